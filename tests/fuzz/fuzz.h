/*
 * The libFuzzer entry points every target defines. Built with -fsanitize=fuzzer, libFuzzer
 * supplies main(); otherwise replay.c does, running each corpus file through the target once.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional one-time setup (argc/argv may be edited); called before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts (a crash the fuzzer reports) when an invariant of the code under test is broken. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
