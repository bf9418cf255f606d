/*
 * group.c - groups of threads: making and freeing them, joining and
 * leaving them (spawn and exit), and waiting for them to empty.
 *
 * A group is a set of weft threads plus a set of subgroups, with a stop
 * state (stop.c delivers stops; seed 000's "grouping, like the process
 * groups in the OS"). A thread belongs to at most one group, from its spawn
 * to its exit: the one its weft_attr names, else its spawner's (none for a
 * thread spawned by a plain kernel thread, which belongs to no group).
 * Groups form a forest: weft_group_new(&g, parent) makes g a subgroup of
 * parent, or of the caller's group when parent is NULL, or a top-level
 * group when the caller has none.
 *
 * Counting. weft_group_wait waits for "every thread of g and of its
 * subgroups ended". A count of all of those in every ancestor would make
 * each spawn and exit touch every ancestor. Instead total counts g's own
 * threads plus those of its subgroups whose total is nonzero, so only a
 * change between zero and nonzero is carried to the parent. The invariant,
 * at every moment no lock is held:
 *
 *   g->total == members of g + subgroups c of g with c->total != 0
 *
 * Each change is made under the group's lock, and a change that crosses
 * zero is carried to the parent before the child's lock is released
 * (hand over hand: child, then parent; locks are only ever taken in that
 * direction). Were the child's lock released first, a spawn's 0 -> 1 and
 * an exit's 1 -> 0 of the same group could reach the parent in the wrong
 * order and take its count below zero:
 *
 *   spawner (into g)                    the new thread, exiting
 *   lock g; g 0 -> 1; unlock g
 *                                       lock g; g 1 -> 0; lock p
 *                                       p 0 -> -1 (!)
 *   lock p; p -> 0
 *
 * With the hand-over-hand rule the exit waits for p's lock, and p goes
 * 0 -> 1 -> 0.
 *
 * Waiting. A waiter counts itself in waiters, then parks on &g->total
 * while it is nonzero; the change to zero, under g's lock, stores total
 * and then reads waiters (both seq_cst), so either it sees the waiter and
 * unparks it (the parking lot orders that against the waiter's check under
 * the bucket lock), or the waiter sees the zero. A waiter woken by the
 * zero returns 0 even if a spawn made the group nonempty again before it
 * ran (a REACHED_ZERO token, as wait groups do).
 *
 * Lifetime. weft_group_free refuses (-EBUSY) a group with a nonzero
 * total or with subgroups, under the tree mutex and the group's lock. An
 * exiting thread's last touch of its group is under that lock (it wakes
 * waiters there too), and after it released a group it touches only the
 * parent, whose total it still holds up until it takes the parent's lock.
 * A waiter's last touch is its decrement of waiters, which free waits out
 * (a waiter cannot stay parked once total is zero).
 *
 * Fork. A proc's fork child (proc/spawn.c) has only the forking kernel
 * thread; the parent's threads, the members of every group, are not
 * there, and a group lock or the tree mutex may have been held by one of
 * them at the fork. So the forker holds the tree mutex around fork
 * (weft__stop_fork_prepare, weft__stop_fork_parent): the tree's shape, the
 * list of all groups and every group's stop flags are whole in the child,
 * since each changes only under that mutex. The child then
 * (weft__stop_reset_child) makes the tree mutex and each group's lock
 * new, and each group empty: no members, a total of zero, no waiters. A
 * group the child got from the parent's memory then works there like any
 * other, its stop flags kept. The list of all groups exists for this
 * alone: one more link per group, set in weft_group_new and cleared in
 * weft_group_free under the tree mutex, which both took anyway (a
 * top-level group's new now takes it too).
 *
 * Rejected: a per-group count of every descendant thread (every ancestor
 * touched at each spawn and exit); a global lock for membership (spawns
 * and exits of unrelated groups would contend); reference counts on groups
 * held by member threads (free would then have to be deferred, and a
 * caller could not tell when the memory is gone).
 */
#include "stop/stop.h"

#include <errno.h>
#include <stdlib.h>

weft_mutex_t weft__group_tree = WEFT_MUTEX_INIT;
static struct weft_group *all_groups; /* tree mutex: see Fork, above */

#define REACHED_ZERO 1

static uintptr_t reached_zero(void *ctx, struct unpark_info info)
{
    (void)ctx;
    (void)info;
    return REACHED_ZERO;
}

/* Under g->lock: one member or nonempty subgroup fewer; wakes the waiters
 * when it was the last. Returns whether g became empty. */
static bool count_down(struct weft_group *g)
{
    uint32_t t = load_relaxed(&g->total) - 1;
    store_seq(&g->total, t); /* store-load: pairs with weft_group_wait */
    if (t == 0 && load_seq(&g->waiters))
        weft__unpark_ex(&g->total, -1, reached_zero, NULL);
    return t == 0;
}

void weft__group_enter(struct weft_group *g, struct uthread *ut)
{
    ilock(&g->lock);
    glink_insert_before(&g->members, &ut->gnode);
    /* A thread spawned into a stopped group starts stopped. Nobody else
     * writes the word of a thread not yet published but a stopper aiming
     * at an earlier incarnation, whose CAS fails on the new generation. */
    if (g->stop)
        __atomic_fetch_or(&ut->stop, (uint64_t)g->stop, __ATOMIC_RELAXED);
    struct weft_group *held = g;
    for (;;) {
        uint32_t t = load_relaxed(&held->total);
        store_relaxed(&held->total, t + 1); /* nobody waits for a rise */
        struct weft_group *p = held->parent;
        if (t != 0 || !p)
            break;
        ilock(&p->lock); /* carried up before held is released (see top) */
        iunlock(&held->lock);
        held = p;
    }
    iunlock(&held->lock);
}

void weft__group_leave(struct uthread *ut)
{
    struct weft_group *g = ut->group;
    ut->group = NULL;
    ilock(&g->lock);
    glink_unlink(&ut->gnode); /* from here no group stop can reach ut */
    while (count_down(g) && g->parent) {
        struct weft_group *p = g->parent;
        ilock(&p->lock);
        iunlock(&g->lock); /* g may be freed from here */
        g = p;
    }
    iunlock(&g->lock);
}

int weft_group_new(weft_group_t **out, weft_group_t *parent)
{
    if (!out)
        return -EINVAL;
    if (!parent) {
        struct uthread *self = weft__current();
        parent = self ? self->group : NULL;
    }
    struct weft_group *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->lock = (struct ilock)ILOCK_INIT;
    g->members.next = g->members.prev = &g->members;
    g->parent = parent;
    weft_mutex_lock(&weft__group_tree);
    g->all_next = all_groups;
    if (g->all_next)
        g->all_next->all_link = &g->all_next;
    g->all_link = &all_groups;
    all_groups = g;
    if (parent) {
        /* Under the tree mutex no stop walk runs, so the parent's flags
         * are final for now, and a later walk will find g. */
        g->stop = parent->stop; /* a subgroup of a stopped group is stopped */
        g->sibling = parent->child;
        if (g->sibling)
            g->sibling->link = &g->sibling;
        g->link = &parent->child;
        parent->child = g;
    }
    weft_mutex_unlock(&weft__group_tree);
    *out = g;
    return 0;
}

static bool nonempty(void *ctx)
{
    struct weft_group *g = ctx;
    return load_seq(&g->total) != 0;
}

int weft_group_wait(weft_group_t *g, int64_t deadline)
{
    if (!g)
        return -EINVAL;
    /* A member of g or of a subgroup would wait for itself. Its group and
     * their ancestors cannot be freed while it is a member. */
    struct uthread *self = weft__current();
    for (struct weft_group *a = self ? self->group : NULL; a; a = a->parent)
        if (a == g)
            return -EDEADLK;
    if (load_seq(&g->total) == 0)
        return 0;
    int r = 0;
    fetch_add_seq(&g->waiters, 1);
    while (load_seq(&g->total) != 0) {
        /* Like a join: an untimed wait keeps working for a stopped thread,
         * so it can wait for the threads it stopped. */
        if (weft__stop_cuts(deadline, false)) {
            r = -ECANCELED;
            break;
        }
        if (deadline >= 0 && deadline <= weft_now()) {
            r = -ETIMEDOUT;
            break;
        }
        uintptr_t token = 0;
        int pr = weft__park_ex(&g->total, nonempty, NULL, g, deadline, 0, &token, deadline >= 0);
        if (pr == 0 && token == REACHED_ZERO)
            break;
        if (pr == -ETIMEDOUT || pr == -ECANCELED) {
            r = load_seq(&g->total) == 0 ? 0 : pr;
            break;
        }
    }
    __atomic_fetch_sub(&g->waiters, 1, __ATOMIC_RELEASE); /* last touch: pairs with free */
    return r;
}

int weft_group_free(weft_group_t *g)
{
    if (!g)
        return -EINVAL;
    weft_mutex_lock(&weft__group_tree);
    ilock(&g->lock);
    bool busy = load_relaxed(&g->total) != 0 || g->child;
    iunlock(&g->lock); /* the last leaver, if any, is done with g */
    if (busy) {
        weft_mutex_unlock(&weft__group_tree);
        return -EBUSY;
    }
    /* Waiters still inside weft_group_wait are on their way out: with
     * total zero none stays parked (see top). */
    for (int spins = 0; load_acquire(&g->waiters); spins++) {
        if (spins < 100)
            cpu_relax();
        else
            weft_yield();
    }
    if (g->link) {
        *g->link = g->sibling;
        if (g->sibling)
            g->sibling->link = g->link;
    }
    *g->all_link = g->all_next;
    if (g->all_next)
        g->all_next->all_link = g->all_link;
    weft_mutex_unlock(&weft__group_tree);
    free(g);
    return 0;
}

/* The forker, just before fork: the tree and the list of all groups hold
 * still until weft__stop_fork_parent (see Fork, at the top). */
void weft__stop_fork_prepare(void)
{
    weft_mutex_lock(&weft__group_tree);
}

void weft__stop_fork_parent(void)
{
    weft_mutex_unlock(&weft__group_tree);
}

/* The fork child, before anything else of weft's runs there (see Fork). */
void weft__stop_reset_child(void)
{
    weft__group_tree = (weft_mutex_t)WEFT_MUTEX_INIT;
    for (struct weft_group *g = all_groups; g; g = g->all_next) {
        g->lock = (struct ilock)ILOCK_INIT;
        g->members.next = g->members.prev = &g->members;
        g->total = 0;
        g->waiters = 0;
    }
}
