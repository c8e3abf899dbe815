/* tulip/gen.h — included by <tulip.h>; do not include directly. */
#ifndef TULIP_GEN_H
#define TULIP_GEN_H
#endif
