
# The command path typed so far (global options and their values, operands and command options
# skipped), then its next words or, after a '-', its options and the global ones.
_nimbus() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    case $prev in
    --file | --user-data | --cacert)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --url | --token | --password | --name | --bytes)
        return
        ;;
    esac
    local path="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --url | --token | --cacert)
            ((i++))
            continue
            ;;
        -*) continue ;;
        esac
        if [[ " $(_nimbus_words "$path") " == *" $w "* ]]; then
            path=${path:+$path }$w
        fi
    done
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_nimbus_options "$path") --json --url --token --cacert --help" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_nimbus_words "$path")" -- "$cur"))
    fi
}
complete -F _nimbus nimbus
