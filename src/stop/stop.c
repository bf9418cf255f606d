/*
 * stop.c - stop requests: weft_stop (one thread), weft_group_stop (a group
 * and its subgroups), weft_stopping, and the stop-exempt fds.
 *
 * What a stop does (seed 000, made exact in weft.h): the stopped thread's
 * calls that would block fail with -ECANCELED, and a call already blocked
 * is woken; untimed lock waits and joins keep working. The request is a
 * flag in the thread's stop word (uthread.stop, internal.h) that every
 * blocking call tests, plus, for a thread blocked right now, ending the
 * wait it blocks in; sync/wait.c does both for one thread
 * (weft__wait_stop) and argues there why no request is lost and why the
 * stopper is done with the wait before its owner returns. This file
 * decides which threads a request reaches.
 *
 * States. A thread's flags go from none to ST_STOP, and perhaps later to
 * ST_STOP | ST_FILES; never back (sticky; stopping again is a no-op). A
 * group's flags (group.stop) likewise; every member and every subgroup of
 * a group has at least the group's flags, because
 *   - a thread joining a group takes its flags (group.c, enter);
 *   - a subgroup made under a group takes its flags (weft_group_new);
 *   - weft_group_stop sets a group's flags under its lock and then stops
 *     each member found in its list, and does the same for every
 *     subgroup, parents first, all under the tree mutex, so no subgroup
 *     is made or freed, and no other stop walks, meanwhile.
 * A group whose flags already include the request's is skipped with its
 * whole subtree: that invariant says there is nothing to do there.
 *
 * Who touches what. A group stop reaches its members through the group's
 * list, under the group's lock; a listed thread has not yet passed the
 * unlink in its exit (group.c, leave), so it is alive and its incarnation
 * is the listed one. The lock is dropped every WALK_BATCH members, a
 * marker node keeping the walk's place, so exiting threads (the stopped
 * ones, soon) are not held up for the whole walk. A handle stop finds the
 * thread through the handle table: the slot's generation says whether the
 * handle is live, a slot pin keeps the descriptor mapped while the
 * stopper touches it (thread/table.c), and the generation in the stop
 * word keeps a stop meant for an ended thread from reaching the next
 * thread to reuse the descriptor.
 *
 * Stopped threads are made runnable by the stopper, on its own worker's
 * queues (other workers steal them), or through the global queue from a
 * plain kernel thread.
 *
 * Plain kernel threads (main, foreign pthreads) are not weft threads: no
 * handle names them, they belong to no group, and weft_stopping() is 0
 * there; every call keeps working on them. They may stop others.
 *
 * Exempt fds are a bit in the io layer's fd table (FD_EXEMPT, io/io.h):
 * the wrappers test it in the flags word they load anyway, where a list
 * of our own would cost a second look-up per call.
 *
 * Rejected: delivering a group stop by a flag in the group that blocked
 * threads poll (a thread blocked already would not notice); a stop that
 * kills the thread's stack (the seed's "nicely": the thread unwinds
 * itself, releasing its locks, from the -ECANCELED its calls return).
 */
#include "stop/stop.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>

#define WALK_BATCH 64

static uint32_t flags_of(unsigned flags)
{
    return ST_STOP | (flags & WEFT_STOP_FILES ? ST_FILES : 0);
}

int weft_stop(weft_t t, unsigned flags)
{
    if (flags & ~(unsigned)WEFT_STOP_FILES)
        return -EINVAL;
    struct slot *s = weft__slot_get(handle_slot(t));
    if (!s || !handle_gen(t))
        return -ESRCH;
    uint64_t w = load_acquire(&s->word); /* pairs with spawn's release */
    if (word_gen(w) != handle_gen(t) || !(word_flags(w) & TS_LIVE))
        return -ESRCH;
    if (word_flags(w) & TS_EXITED)
        return 0; /* finished, not yet joined: nothing left to stop */
    struct uthread *ut = weft__slot_pin(s);
    /* NULL: the thread ended and its stack went since the check above.
     * Otherwise the stop word's generation tells whether ut is still the
     * thread of the handle (sync/wait.c). */
    if (ut)
        weft__wait_stop(ut, handle_gen(t), flags_of(flags));
    weft__slot_unpin();
    return 0;
}

/* Stops g's members with st, having added st to g's own flags. Under the
 * tree mutex; takes g's lock in batches. */
static void stop_members(struct weft_group *g, uint32_t st)
{
    struct glink mark; /* the walk's place while the lock is dropped */
    ilock(&g->lock);
    g->stop |= st; /* from here a joining thread takes st itself */
    struct glink *n = g->members.next;
    for (int k = 0; n != &g->members; k++) {
        if (k == WALK_BATCH) {
            /* Exits unlink their own nodes, never the marker, so the
             * marker's next is where to go on. */
            glink_insert_before(n, &mark);
            iunlock(&g->lock);
            cpu_relax();
            ilock(&g->lock);
            n = mark.next;
            glink_unlink(&mark);
            k = 0;
            continue;
        }
        struct uthread *ut = member_of(n);
        n = n->next;
        weft__wait_stop(ut, handle_gen(ut->handle), st);
    }
    iunlock(&g->lock);
}

int weft_group_stop(weft_group_t *g, unsigned flags)
{
    if (!g || (flags & ~(unsigned)WEFT_STOP_FILES))
        return -EINVAL;
    uint32_t st = flags_of(flags);
    weft_mutex_lock(&weft__group_tree);
    for (struct weft_group *x = g; x;) {
        if ((x->stop & st) == st) {
            x = group_walk_skip(x, g); /* stopped so already, subtree and all */
            continue;
        }
        stop_members(x, st);
        x = group_walk_next(x, g);
    }
    weft_mutex_unlock(&weft__group_tree);
    return 0;
}

int weft_stopping(void)
{
    return weft__stop_self() & ST_STOP ? 1 : 0;
}

int weft_fd_exempt(int fd, int exempt)
{
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    return weft__fd_exempt(fd, exempt != 0);
}
