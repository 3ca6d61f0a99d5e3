#!/bin/sh
# Makes the man pages (debian/man/*.in with @HELP@ replaced by the program's --help) and the bash
# completion of the CLI from the built programs, so both list exactly what the programs accept.
#   sh debian/gen-docs.sh BUILD_DIR OUT_DIR
set -eu
build=$1
out=$2
here=$(dirname "$0")

# The date of the changelog entry, not of the build: the pages come out the same every time.
date=$(dpkg-parsechangelog -l "$here/changelog" -SDate | xargs -I{} date -u -d {} +%Y-%m-%d)
version=$(dpkg-parsechangelog -l "$here/changelog" -SVersion)

# --help text as a roff no-fill block: backslashes and minus signs escaped, a leading '.' or "'"
# made literal.
roff_verbatim() {
    sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

page() { # TEMPLATE OUTPUT HELP_COMMAND...
    template=$1 output=$2
    shift 2
    help=$("$@" | roff_verbatim)
    while IFS= read -r line; do
        case $line in
        @HELP@) printf '.nf\n%s\n.fi\n' "$help" ;;
        *) printf '%s\n' "$line" | sed -e "s/@DATE@/$date/g" -e "s/@VERSION@/$version/g" ;;
        esac
    done <"$template" >"$output"
}

page "$here/man/nimbusd.8.in" "$out/nimbusd.8" "$build/src/daemon/nimbusd" --help
page "$here/man/nimbusd.conf.5.in" "$out/nimbusd.conf.5" "$build/src/daemon/nimbusd" --help
page "$here/man/nimbus.1.in" "$out/nimbus.1" "$build/src/cli/nimbus" --help
page "$here/man/nimbus-agent.8.in" "$out/nimbus-agent.8" "$build/src/agent/nimbus-agent" --help

# The completion: every command path ("vm", "vm nic", "secgroup rule") with the words that may
# follow it and the options of each command, read from the "Commands:" block of `nimbus --help`.
"$build/src/cli/nimbus" --help | awk '
function add(list, key, word) {
    if (index(" " list[key] " ", " " word " ") == 0)
        list[key] = list[key] == "" ? word : list[key] " " word
}
function entry(text, n, t, i, k, alt, words, paths, np, j, w, opt, top, parts, m, x, base, depth) {
    n = split(text, t, " ")
    alt = 0
    top = 0
    i = 2
    add(kids, "", t[1])
    while (i <= n + 1) {
        # one alternative: its command words, then its operands and options, up to a lone "|"
        np = 0
        words = ""
        while (i <= n && t[i] ~ /^[a-z][a-z-]*(\|[a-z][a-z-]*)*$/) {
            words = words == "" ? t[i] : words " " t[i]
            i++
        }
        if (alt == 0 && words == "" && (i > n || t[i] == "|"))
            top = 1 # "logout | whoami": the other alternatives are commands of their own
        if (top && alt > 0) {
            split(words, parts, " ")
            add(kids, "", parts[1])
            base = parts[1]
            k = 2
        } else {
            base = t[1]
            split(words, parts, " ")
            k = 1
        }
        # the last command word may be "start|stop|...": one path each
        m = 0
        for (; k in parts; k++) {
            if (parts[k] ~ /\|/ && !((k + 1) in parts)) {
                np = split(parts[k], x, "|")
                for (j = 1; j <= np; j++) {
                    add(kids, base, x[j])
                    paths[j] = base " " x[j]
                }
                m = 1
                break
            }
            add(kids, base, parts[k])
            base = base " " parts[k]
        }
        if (!m) {
            np = 1
            paths[1] = base
        }
        # a "|" inside brackets ("[--cidr C | --remote-group G]") separates operands, not commands
        depth = 0
        while (i <= n && (t[i] != "|" || depth > 0)) {
            w = t[i]
            depth += gsub(/\[/, "[", w) - gsub(/\]/, "]", w)
            while (match(w, /--[a-z][a-z0-9-]*/)) {
                opt = substr(w, RSTART, RLENGTH)
                for (j = 1; j <= np; j++)
                    add(opts, paths[j], opt)
                w = substr(w, RSTART + RLENGTH)
            }
            i++
        }
        i++
        alt++
    }
}
/^Commands:/ { inside = 1; next }
inside && /^[[:space:]]*$/ { inside = 0 }
inside && /^  [a-z]/ { if (cur != "") entry(cur); cur = $0; next }
inside { cur = cur " " $0 }
END {
    if (cur != "")
        entry(cur)
    print "# bash completion for nimbus(1): generated from `nimbus --help` by debian/gen-docs.sh"
    print "_nimbus_words() {"
    print "    case \"$1\" in"
    for (k in kids)
        printf "    \"%s\") echo \"%s\" ;;\n", k, kids[k]
    print "    esac"
    print "}"
    print "_nimbus_options() {"
    print "    case \"$1\" in"
    for (k in opts)
        printf "    \"%s\") echo \"%s\" ;;\n", k, opts[k]
    print "    esac"
    print "}"
}' >"$out/nimbus.bash-completion.tmp"
if ! grep -q '^    "vm")' "$out/nimbus.bash-completion.tmp"; then
    echo "gen-docs.sh: no commands found in nimbus --help" >&2
    exit 1
fi
cat "$out/nimbus.bash-completion.tmp" "$here/nimbus-completion.bash" >"$out/nimbus"
rm -f "$out/nimbus.bash-completion.tmp"
