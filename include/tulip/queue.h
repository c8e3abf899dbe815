/* tulip/queue.h — included by <tulip.h>; do not include directly. */
#ifndef TULIP_QUEUE_H
#define TULIP_QUEUE_H
#endif
