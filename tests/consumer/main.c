/* An out-of-tree program built against an installed tulip (see run.sh). */
#include <stdio.h>
#include <tulip.h>

static int hello(void *arg)
{
    (void)arg;
    return 42;
}

int main(void)
{
    return tl_run(hello, NULL) == 42 ? (puts("tulip consumer ok"), 0) : 1;
}
