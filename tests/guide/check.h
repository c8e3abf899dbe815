/* The guide programs' own check: the condition, where, and exit 1. Not
 * shown in the guide (docs/guide.md shows the regions between the
 * "guide:" markers of each program). */
#ifndef GUIDE_CHECK_H
#define GUIDE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                   \
            exit(1);                                                    \
        }                                                               \
    } while (0)

#endif
