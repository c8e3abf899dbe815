/* An out-of-tree program built against an installed tulip (see run.sh).
 * With --version it prints the library's version instead. */
#include <stdio.h>
#include <string.h>
#include <tulip.h>

static int hello(void *arg)
{
    (void)arg;
    return 42;
}

int main(int argc, char **argv)
{
    if (tl_version() != TL_VERSION_HEX) {
        printf("headers %s, library %s\n", TL_VERSION_STRING,
               tl_version_string());
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts(tl_version_string());
        return 0;
    }
    return tl_run(hello, NULL) == 42 ? (puts("tulip consumer ok"), 0) : 1;
}
