/* The version the library reports is the one its headers declare, and the
 * hex and string forms agree (tulip/version.h). */
#include "tiny.h"

#include <stdio.h>
#include <tulip.h>

TINY_TEST(library_matches_headers)
{
    TINY_ASSERT_EQ(tl_version(), (unsigned)TL_VERSION_HEX);
    TINY_ASSERT_STR_EQ(tl_version_string(), TL_VERSION_STRING);
}

TINY_TEST(hex_packs_major_minor_patch)
{
    TINY_ASSERT_EQ(TL_VERSION_NUM(1, 2, 3), 0x010203);
    TINY_ASSERT_EQ(TL_VERSION_HEX >> 16, TL_VERSION_MAJOR);
    TINY_ASSERT_EQ((TL_VERSION_HEX >> 8) & 0xff, TL_VERSION_MINOR);
    TINY_ASSERT_EQ(TL_VERSION_HEX & 0xff, TL_VERSION_PATCH);
    TINY_ASSERT(TL_VERSION_NUM(0, 10, 0) > TL_VERSION_NUM(0, 9, 99));
}

TINY_TEST(string_is_dotted_numbers)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TL_VERSION_MAJOR,
             TL_VERSION_MINOR, TL_VERSION_PATCH);
    TINY_ASSERT_STR_EQ(tl_version_string(), want);
}

int main(int argc, char **argv)
{
    return tiny_main("test_version", argc, argv);
}
