/* tulip/version.h — included by <tulip.h>; do not include directly.
 *
 * ======================================================================
 * Version
 * ======================================================================
 *
 * The version of the headers a program was compiled with (the macros) and
 * of the library it runs against (tl_version, tl_version_string). They
 * differ when a program built against one release runs with the shared
 * library of another. Releases that share the major version (before 1.0:
 * the minor too) only add to the API and ABI; see "API stability" in the
 * README. CMakeLists.txt reads the three numbers below, so this file is
 * the one place a release changes them.
 *
 *     #if TL_VERSION_HEX >= TL_VERSION_NUM(0, 2, 0)
 *         ... use something 0.2.0 added ...
 *     #endif
 */
#ifndef TULIP_VERSION_H
#define TULIP_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* The release the headers belong to: major.minor.patch. */
#define TL_VERSION_MAJOR 0
#define TL_VERSION_MINOR 1
#define TL_VERSION_PATCH 0

/* major, minor and patch in one comparable number, 0xMMmmpp (libuv's
 * UV_VERSION_HEX): 0.1.0 is 0x000100. */
#define TL_VERSION_NUM(major, minor, patch) \
    (((major) << 16) | ((minor) << 8) | (patch))
#define TL_VERSION_HEX \
    TL_VERSION_NUM(TL_VERSION_MAJOR, TL_VERSION_MINOR, TL_VERSION_PATCH)

/* The version as a string literal, "0.1.0". */
#define TL_VERSION_STRING                                         \
    TL__VERSION_STR(TL_VERSION_MAJOR) "." TL__VERSION_STR(        \
        TL_VERSION_MINOR) "." TL__VERSION_STR(TL_VERSION_PATCH)

/* The version of the library the program runs against, as TL_VERSION_HEX
 * (compare it with the macro to detect a header/library mismatch). Any
 * thread, any time. */
TL_API unsigned tl_version(void);

/* The same as a static string, "0.1.0". Any thread, any time. */
TL_API const char *tl_version_string(void);

/* Implementation details of TL_VERSION_STRING; not API. */
#define TL__VERSION_STR2(x) #x
#define TL__VERSION_STR(x) TL__VERSION_STR2(x)

#ifdef __cplusplus
}
#endif

#endif
