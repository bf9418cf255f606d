/*
 * t_spawn_join: weft_spawn starts fn(arg) on a new thread and weft_join hands
 * back what that thread produced, whether fn returned it or a nested call
 * ended the thread with weft_exit. attr is optional; its name is copied and
 * its stack size is honoured (a thread can use most of a 1 MiB stack, and a
 * size that is not a page multiple is rounded up). A spawned thread's handle
 * is never 0, weft_self() inside it is that handle, weft_self() is 0 on main,
 * and spawn rejects a NULL fn or an absurd stack size with -EINVAL.
 */
#include "check.h"

#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static void *triple_plus_one(void *arg)
{
    return U2P(P2U(arg) * 3 + 1);
}

/* weft_exit from two calls down; the code after it must never run. */
static int after_exit_ran;

static void exit_level2(uintptr_t v)
{
    weft_exit(U2P(v + 1000));
}

static __attribute__((noinline)) void exit_level1(uintptr_t v)
{
    exit_level2(v * 2);
    after_exit_ran = 1;
}

static void *exits_from_nested(void *arg)
{
    exit_level1(P2U(arg));
    after_exit_ran = 1;
    return U2P(1);
}

/* Uses `bytes` of its stack: a thread spawned with a big stack may. */
static void *use_stack(void *arg)
{
    size_t bytes = (size_t)P2U(arg);
    volatile char buf[bytes];
    for (size_t i = 0; i < bytes; i += 512)
        buf[i] = (char)i;
    uintptr_t sum = 0;
    for (size_t i = 0; i < bytes; i += 512)
        sum += (unsigned char)buf[i];
    return U2P(sum);
}

static uintptr_t expected_use_stack(size_t bytes)
{
    uintptr_t sum = 0;
    for (size_t i = 0; i < bytes; i += 512)
        sum += (unsigned char)(char)i;
    return sum;
}

/* A thread records its own handle; main compares after the join. */
#define NSELF 1000
static weft_t self_seen[NSELF];

static void *record_self(void *arg)
{
    self_seen[P2U(arg)] = weft_self();
    return arg;
}

/* A thread that spawns and joins a child from inside weft. */
static void *child_self(void *arg)
{
    (void)arg;
    return U2P(weft_self());
}

static void *parent_of_child(void *arg)
{
    (void)arg;
    weft_t me = weft_self(), child;
    CHECK(me != 0);
    CHECK_ERR(weft_spawn(&child, child_self, NULL, NULL), 0);
    CHECK(child != 0 && child != me);
    void *r;
    CHECK_ERR(weft_join(child, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), child);
    CHECK_EQ(weft_self(), me);
    return U2P(me);
}

struct box {
    int in;
    int out;
};

/* Passes a pointer in and a heap pointer out. */
static void *make_box(void *arg)
{
    struct box *in = arg;
    struct box *b = malloc(sizeof(*b));
    CHECK(b != NULL);
    b->in = in->in;
    b->out = in->in * 7;
    return b;
}

int main(void)
{
    /* Before the runtime started, and main is no weft thread. */
    CHECK_EQ(weft_self(), 0);

    weft_t t;
    void *r;

    /* A returned value reaches join. */
    CHECK_ERR(weft_spawn(&t, triple_plus_one, U2P(41), NULL), 0);
    CHECK(t != 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 124);
    CHECK_EQ(weft_self(), 0);

    /* weft_exit from a nested function ends the thread with its value. */
    CHECK_ERR(weft_spawn(&t, exits_from_nested, U2P(5), NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1010);
    CHECK_EQ(after_exit_ran, 0);

    /* Join with result NULL. */
    CHECK_ERR(weft_spawn(&t, triple_plus_one, U2P(1), NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);

    /* Pointers pass through unchanged. */
    struct box in = {.in = 6};
    CHECK_ERR(weft_spawn(&t, make_box, &in, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    struct box *out = r;
    CHECK_EQ(out->in, 6);
    CHECK_EQ(out->out, 42);
    free(out);

    /* attr: all defaults, a name alone, a name longer than 31 bytes in a
     * buffer overwritten right after spawn (it must have been copied). */
    weft_attr a0 = {0};
    CHECK_ERR(weft_spawn(&t, triple_plus_one, U2P(2), &a0), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 7);

    weft_attr named = {.name = "worker-1"};
    CHECK_ERR(weft_spawn(&t, triple_plus_one, U2P(3), &named), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 10);

    char longname[64];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    weft_attr longattr = {.name = longname};
    CHECK_ERR(weft_spawn(&t, triple_plus_one, U2P(4), &longattr), 0);
    memset(longname, 0, sizeof(longname));
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 13);

    /* A 1 MiB stack holds a 768 KiB frame (the 64 KiB default would not). */
    weft_attr big = {.stack_size = 1 << 20, .name = "big"};
    CHECK_ERR(weft_spawn(&t, use_stack, U2P(768 * 1024), &big), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), expected_use_stack(768 * 1024));

    /* A size that is not a page multiple is rounded up, not down. */
    weft_attr odd = {.stack_size = 100000};
    CHECK_ERR(weft_spawn(&t, use_stack, U2P(80000), &odd), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), expected_use_stack(80000));

    /* A small stack is enough for a small function. */
    weft_attr small = {.stack_size = 16384, .name = "small"};
    CHECK_ERR(weft_spawn(&t, triple_plus_one, U2P(9), &small), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 28);

    /* Bad arguments. */
    CHECK_ERR(weft_spawn(&t, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(weft_spawn(NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(weft_spawn(&t, NULL, NULL, &named), -EINVAL);
    weft_attr absurd = {.stack_size = SIZE_MAX};
    CHECK_ERR(weft_spawn(&t, triple_plus_one, NULL, &absurd), -EINVAL);

    /* Handles: never 0, distinct while their threads are unjoined, equal to
     * what weft_self() said inside each thread. */
    static weft_t handles[NSELF];
    for (int i = 0; i < NSELF; i++) {
        CHECK_ERR(weft_spawn(&handles[i], record_self, U2P(i), NULL), 0);
        CHECK(handles[i] != 0);
    }
    for (int i = 0; i < NSELF; i++) {
        for (int k = i + 1; k < NSELF; k++)
            CHECK(handles[i] != handles[k]);
    }
    for (int i = 0; i < NSELF; i++) {
        CHECK_ERR(weft_join(handles[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), i);
        CHECK_EQ(self_seen[i], handles[i]);
    }

    /* Spawn and join from inside a weft thread. */
    CHECK_ERR(weft_spawn(&t, parent_of_child, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), t);

    CHECK_EQ(weft_self(), 0);
    return 0;
}
