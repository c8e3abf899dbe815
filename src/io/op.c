/* Kernel requests of the completion backend (io_uring): the op table,
 * running one op for a task, cancelling it, and its completion.
 *
 * An op is runtime memory in a table of slots; its user_data is slot +
 * generation, so a completion for a slot that was freed and reused is
 * dropped (tl__op_complete), never applied to the new op.
 *
 * Life of an op run by a task (tl__op_run):
 *
 *   new -> submit (an SQE now, or the backend's pending list when the SQ
 *   is full) -> task parks -> completion: res kept, owner woken -> the
 *   owner reads res and frees the op.
 *
 * Cancel (the owner's cancel hook, op_cancel):
 *   - still on the pending list: the kernel never saw it; freed, the owner
 *     wakes with -ECANCELED at once;
 *   - op->abandon (it touches runtime memory only: poll requests, buffers
 *     the runtime owns): the op becomes an orphan, counted in l->inflight
 *     until its completion frees it; the owner leaves at once;
 *   - otherwise (a caller's buffer, invariant 1): an async cancel is
 *     submitted and the owner keeps waiting, uncancellably, for the op's
 *     OWN completion (the cancel request's result proves nothing). That
 *     completion decides: a result >= 0, or an error other than the
 *     kernel's -ECANCELED, raced the cancel and is kept (completed wins);
 *     -ECANCELED becomes the task's own -ECANCELED (invariant 4: the
 *     kernel's code never reaches a task that was not cancelled: there it
 *     means the fd was closed through tulip, TL_ECLOSED).
 */
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

static tl__op *op_slot(tl__io *io, uint32_t slot)
{
    uint32_t c = slot / TL__OP_CHUNK;
    if (c >= io->nopchunks || !io->opchunks[c]) return NULL;
    return &io->opchunks[c][slot % TL__OP_CHUNK];
}

static bool grow_ops(tl__io *io)
{
    uint32_t c = io->nopchunks;
    if (c >= (1u << 30) / TL__OP_CHUNK) return false; /* 30-bit slots */
    tl__op **p = realloc(io->opchunks, (c + 1) * sizeof *p);
    if (!p) return false;
    io->opchunks = p;
    tl__op *ch = calloc(TL__OP_CHUNK, sizeof *ch);
    if (!ch) return false;
    p[c] = ch;
    io->nopchunks = c + 1;
    for (uint32_t i = 0; i < TL__OP_CHUNK; i++) {
        ch[i].slot = c * TL__OP_CHUNK + i;
        ch[i].gen = 1;
        tl__list_init(&ch[i].fd_link);
        tl__list_push(&io->free_ops, &ch[i].pend_link);
    }
    return true;
}

tl__op *tl__op_new(tl__loop *l, int kind, tl__fd *r)
{
    tl__io *io = tl__io_get(l);
    if (!io) return NULL;
    if (tl__list_empty(&io->free_ops) && !grow_ops(io)) return NULL;
    tl__op *op = tl__container_of(tl__list_pop(&io->free_ops), tl__op,
                                  pend_link);
    uint32_t slot = op->slot, gen = op->gen;
    memset(op, 0, sizeof *op);
    op->slot = slot;
    op->gen = gen;
    tl__list_init(&op->fd_link);
    tl__list_init(&op->pend_link);
    op->kind = (uint8_t)kind;
    op->state = TL__OPS_SUBMITTED;
    op->off = -1;
    op->fd = r ? r->fd : -1;
    op->rec = r;
    op->fd_gen = r ? r->gen : 0;
    io->owed++;
    return op;
}

void tl__op_free(tl__loop *l, tl__op *op)
{
    tl__io *io = l->io;
    if (op->counted) { /* freed before its completion (never submitted) */
        op->counted = 0;
        l->inflight--;
    }
    tl__list_remove(&op->fd_link);
    op->state = TL__OPS_FREE;
    op->gen = op->gen + 1 ? op->gen + 1 : 1; /* stale user_data: dropped */
    op->owner = NULL;
    op->data = NULL;
    tl__list_push(&io->free_ops, &op->pend_link);
    io->owed--;
}

static void op_cancel(tl__task *t)
{
    tl__op *op = t->wait_data;
    tl__loop *l = t->loop;
    if (op->state == TL__OPS_CANCELLING) return; /* tl_close got there */
    if (l->backend->cancel(l, op) == 1) {
        if (op->rec && op->rec->gen == op->fd_gen) tl__fd_release(op->rec, t);
        tl__op_free(l, op);
        l->io_waiters--;
        tl__wake(t, -ECANCELED);
        return;
    }
    if (!op->counted) {
        op->counted = 1;
        l->inflight++; /* owed regardless of any peer: the clock waits */
    }
    if (op->abandon) {
        op->orphan = 1;
        op->owner = NULL;
        if (op->rec && op->rec->gen == op->fd_gen) tl__fd_release(op->rec, t);
        tl__list_remove(&op->fd_link);
        l->io_waiters--;
        tl__wake(t, -ECANCELED);
        return;
    }
    op->cancel_asked = 1; /* keep waiting for its own completion */
}

void tl__op_complete(tl__loop *l, uint64_t ud, int res, unsigned flags)
{
    if (!l->io) return;
    tl__op *op = op_slot(l->io, (uint32_t)(ud >> 2) & 0x3fffffffu);
    if (!op || op->state == TL__OPS_FREE || op->gen != (uint32_t)(ud >> 32))
        return; /* its slot was freed (and maybe reused) meanwhile */
    if (op->done) {
        op->done(l, op, res, flags);
        return;
    }
    op->res = res;
    if (op->counted) {
        op->counted = 0;
        l->inflight--;
    }
    if (op->orphan) {
        tl__op_free(l, op);
        return;
    }
    tl__task *t = op->owner;
    if (op->rec && op->rec->gen == op->fd_gen) tl__fd_release(op->rec, t);
    tl__list_remove(&op->fd_link);
    op->owner = NULL;
    if (t) {
        l->io_waiters--;
        tl__wake(t, 0);
    }
}

int tl__op_run(tl__task *self, tl__op *op, unsigned dirs, const char *what)
{
    tl__loop *l = self->loop;
    tl__fd *r = op->rec;
    if (r) {
        if (((dirs & (1u << TL__DIR_R)) && r->waiter[TL__DIR_R]) ||
            ((dirs & (1u << TL__DIR_W)) && r->waiter[TL__DIR_W])) {
            tl__op_free(l, op);
            return -EBUSY;
        }
        if (dirs & (1u << TL__DIR_R)) r->waiter[TL__DIR_R] = self;
        if (dirs & (1u << TL__DIR_W)) r->waiter[TL__DIR_W] = self;
        tl__list_push(&r->ops, &op->fd_link);
    }
    op->dirs = (uint8_t)dirs;
    op->owner = self;
    l->backend->submit(l, op);
    l->io_waiters++;
    self->wait_data = op;
    self->io_streak = 0;
    int w = tl__park(self, op_cancel, what);
    if (w < 0) return w; /* the op is gone: -ECANCELED or TL_ECLOSED */
    int res = op->res;
    bool asked = op->cancel_asked, closed = op->closed;
    tl__op_free(l, op);
    if (res == -ECANCELED || (asked && res == -EINTR)) {
        if (asked) return -ECANCELED; /* the task's own cancellation */
        if (closed) return TL_ECLOSED;
        /* Nobody here asked for it (a kernel-side cancel): never pass
         * the kernel's -ECANCELED on as if the task were cancelled. */
        return -EIO;
    }
    return res;
}
