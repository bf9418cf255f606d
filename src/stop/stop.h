/*
 * stop.h - declarations private to the stop layer (src/stop/): the group
 * object, shared by group.c (life of groups, membership, waiting) and
 * stop.c (stop requests, the walk that delivers them).
 *
 * The design is at the top of group.c (groups) and stop.c (requests); the
 * per-thread half of a stop, the one that ends a wait, is sync/wait.c's.
 */
#ifndef WEFT_STOP_STOP_H
#define WEFT_STOP_STOP_H

#include "sync/sync.h"

/*
 * A group. Locks, in the order they are taken: the tree mutex (group.c),
 * then a group's lock; a thread that holds one group's lock takes only its
 * parent's next (membership counts carried up), never a child's.
 */
struct weft_group {
    struct ilock lock;
    uint32_t stop;              /* ST_* flags requested for the group and
                                   every thread that joins it; sticky.
                                   Stored under lock; read under lock, or
                                   under the tree mutex (which every store
                                   holds as well) */
    uint32_t total;             /* lock for stores, atomic seq_cst loads
                                   (weft_group_wait): member threads plus
                                   subgroups whose own total is nonzero */
    uint32_t waiters;           /* atomic seq_cst: threads inside
                                   weft_group_wait on this group */
    struct glink members;       /* lock: sentinel of the member threads
                                   (uthread.gnode), oldest first */
    struct weft_group *parent;  /* fixed; NULL for a top-level group */
    struct weft_group *child;   /* tree mutex: first subgroup */
    struct weft_group *sibling; /* tree mutex: next subgroup of parent */
    struct weft_group **link;   /* tree mutex: what points at this group
                                   (parent->child or the previous
                                   sibling's sibling); NULL at top level */
    struct weft_group *all_next; /* tree mutex: every group, for a fork */
    struct weft_group **all_link; /* tree mutex: what points at this group
                                   in that list */
};

/* The tree mutex: held by weft_group_new, weft_group_free and the stop
 * walk, so the shape of the tree and every group's stop flags hold still
 * for each of them; and by a proc's forker around fork, so a fork child
 * finds the tree and the list of all groups whole (group.c). A weft mutex,
 * not an internal lock: the walk may take milliseconds, and an untimed
 * lock keeps working for stopped threads. */
extern weft_mutex_t weft__group_tree WEFT_HIDDEN;

static inline struct uthread *member_of(struct glink *n)
{
    return (struct uthread *)((char *)n - offsetof(struct uthread, gnode));
}

static inline void glink_insert_before(struct glink *at, struct glink *n)
{
    n->next = at;
    n->prev = at->prev;
    at->prev->next = n;
    at->prev = n;
}

static inline void glink_unlink(struct glink *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
}

/* In a pre-order walk of the subtree of root: the next group after g and
 * its subgroups, or NULL when the walk is done. Under the tree mutex. */
static inline struct weft_group *group_walk_skip(struct weft_group *g, struct weft_group *root)
{
    for (; g != root; g = g->parent)
        if (g->sibling)
            return g->sibling;
    return NULL;
}

/* The next group after g in that walk: its first subgroup, if any. */
static inline struct weft_group *group_walk_next(struct weft_group *g, struct weft_group *root)
{
    return g->child ? g->child : group_walk_skip(g, root);
}

#endif
