/* tl_version: the numbers of the library itself, compiled in, so a program
 * can compare them with the TL_VERSION_* macros it was compiled with. */
#include "internal.h"

unsigned tl_version(void)
{
    return TL_VERSION_HEX;
}

const char *tl_version_string(void)
{
    return TL_VERSION_STRING;
}
