/*
 * t_chan_select: weft_chan_select's contract.
 *
 *  - errors: n < 0, ops NULL with n > 0, a dir that is neither WEFT_SEND
 *    nor WEFT_RECV (0 included, even on an op whose ch is NULL), a send
 *    with elem NULL: -EINVAL;
 *  - nothing to select (n == 0, or every ch NULL): -ETIMEDOUT at once for
 *    deadline 0, and no earlier than a deadline 10 ms ahead;
 *  - ready operations: a receive from a channel holding an element and a
 *    send to one with room complete at once and return their index; the
 *    same channel may appear twice; a select that sends and receives on one
 *    rendezvous channel never pairs with itself (-ETIMEDOUT, at once and
 *    after 10 ms);
 *  - deadlines: a select on channels that stay empty gives -ETIMEDOUT no
 *    earlier than its deadline and leaves no record behind (the channels
 *    can then be freed, which would abort if a waiter were still queued);
 *  - wake-ups: a select waiting on {recv a, recv b, send c}, from a weft
 *    thread and from main, is completed by a partner sending on b (returns
 *    1 with the element) or receiving on c (returns 2, the partner gets the
 *    element);
 *  - close: a closed, drained channel's receive and a closed channel's
 *    send complete with -EPIPE and their ch is set to NULL, so the next
 *    select ignores them; a closed channel with buffered elements gives
 *    them first; a select waiting when the channel closes wakes with
 *    -EPIPE;
 *  - fairness: over 10,000 rounds where two operations are always ready
 *    (two receives; a send and a receive; two receives beside a third
 *    operation that is never ready), each is picked in 40-60% of rounds
 *    (the standard deviation is 0.5%: this never fails by chance);
 *  - exactly once: 4 producers select-send their elements to whichever of
 *    4 input channels (capacities 0, 0, 1, 4) takes them, 2 producers
 *    plain-send to one of them; 2 relays move elements from the inputs to
 *    2 output channels (capacities 0, 2) with one select mixing receives
 *    (while they have room) and sends (while they hold some); 6 consumers
 *    select-receive from all 6 channels (each listing them in a different
 *    order, so selects lock them in opposite orders in their arrays) with
 *    short deadlines now and then, 2 plain-receive from an input. A third
 *    of every role are pthreads. Once the producers are done the inputs
 *    are closed, once the relays are done the outputs; each consumer stops
 *    once every case is disabled. Every element arrives exactly once. Run
 *    with WEFT_WORKERS=1, 2 and 8 (this program run again).
 */
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

extern char **environ;

static weft_chan_t *new_chan(size_t cap)
{
    weft_chan_t *c;
    CHECK_ERR(weft_chan_new(&c, sizeof(uint64_t), cap), 0);
    return c;
}

static void put(weft_chan_t *c, uint64_t v)
{
    CHECK_ERR(weft_chan_send(c, &v, 0), 0);
}

/* ---- errors and nothing to select ---- */

static void check_errors(void)
{
    weft_chan_t *c = new_chan(1);
    uint64_t v = 1;
    weft_chan_op ops[2] = {{c, WEFT_RECV, &v}, {c, WEFT_SEND, &v}};
    CHECK_ERR(weft_chan_select(ops, -1, 0), -EINVAL);
    CHECK_ERR(weft_chan_select(NULL, 1, 0), -EINVAL);
    ops[1].dir = 0;
    CHECK_ERR(weft_chan_select(ops, 2, 0), -EINVAL);
    ops[1].dir = 3;
    CHECK_ERR(weft_chan_select(ops, 2, WEFT_FOREVER), -EINVAL);
    ops[1].ch = NULL;
    CHECK_ERR(weft_chan_select(ops, 2, WEFT_FOREVER), -EINVAL);
    ops[1] = (weft_chan_op){c, WEFT_SEND, NULL};
    CHECK_ERR(weft_chan_select(ops, 2, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_chan_recv(c, &v, 0), -ETIMEDOUT); /* nothing was done */

    CHECK_ERR(weft_chan_select(NULL, 0, 0), -ETIMEDOUT);
    CHECK_ERR(weft_chan_select(ops, 0, weft_after(0)), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_select(NULL, 0, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    weft_chan_op none[2] = {{NULL, WEFT_RECV, &v}, {NULL, WEFT_SEND, &v}};
    CHECK_ERR(weft_chan_select(none, 2, 0), -ETIMEDOUT);
    d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_select(none, 2, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    weft_chan_free(c);
}

/* ---- ready at once, self-pairing, deadlines ---- */

static void check_ready(void)
{
    weft_chan_t *a = new_chan(2), *b = new_chan(1), *r = new_chan(0);
    uint64_t in = 0, out = 77;
    put(a, 5);
    weft_chan_op ops[3] = {{r, WEFT_RECV, &in}, {a, WEFT_RECV, &in}, {NULL, WEFT_RECV, &in}};
    CHECK_ERR(weft_chan_select(ops, 3, 0), 1);
    CHECK_EQ(in, 5);
    CHECK_ERR(weft_chan_select(ops, 3, 0), -ETIMEDOUT);

    /* A send with room. */
    weft_chan_op s[2] = {{r, WEFT_SEND, &out}, {b, WEFT_SEND, &out}};
    CHECK_ERR(weft_chan_select(s, 2, WEFT_FOREVER), 1);
    CHECK_ERR(weft_chan_select(s, 2, 0), -ETIMEDOUT);
    CHECK_ERR(weft_chan_recv(b, &in, 0), 0);
    CHECK_EQ(in, 77);

    /* The same buffered channel twice: whichever runs, it is consistent. */
    put(a, 9);
    in = 0;
    weft_chan_op twice[2] = {{a, WEFT_SEND, &out}, {a, WEFT_RECV, &in}};
    int i = weft_chan_select(twice, 2, 0);
    CHECK(i == 0 || i == 1);
    if (i == 0) {
        CHECK_ERR(weft_chan_recv(a, &in, 0), 0);
        CHECK_EQ(in, 9);
        CHECK_ERR(weft_chan_recv(a, &in, 0), 0);
        CHECK_EQ(in, 77);
    } else {
        CHECK_EQ(in, 9);
    }
    CHECK_ERR(weft_chan_recv(a, &in, 0), -ETIMEDOUT);

    /* Sending and receiving on one rendezvous channel: no self-pairing. */
    weft_chan_op self[2] = {{r, WEFT_SEND, &out}, {r, WEFT_RECV, &in}};
    CHECK_ERR(weft_chan_select(self, 2, 0), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_select(self, 2, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);

    /* Waiting on empty channels until the deadline; nothing left queued. */
    weft_chan_op empty[3] = {{a, WEFT_RECV, &in}, {r, WEFT_RECV, &in}, {r, WEFT_SEND, &out}};
    d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_select(empty, 3, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    CHECK_ERR(weft_chan_send(r, &out, 0), -ETIMEDOUT);
    CHECK_ERR(weft_chan_recv(r, &in, 0), -ETIMEDOUT);
    weft_chan_free(a); /* would abort if a record were left in a queue */
    weft_chan_free(b);
    weft_chan_free(r);
}

static void *ready_thread(void *arg)
{
    (void)arg;
    check_errors();
    check_ready();
    return U2P(1);
}

/* ---- woken by a partner ---- */

struct wake_arg {
    weft_chan_t *a, *b, *c;
    int mode;     /* 0: the partner sends on b; 1: it receives from c */
    uint64_t got; /* what the partner received */
};

static void *partner(void *arg)
{
    struct wake_arg *w = arg;
    usleep(2000); /* so that the select most likely waits first */
    if (w->mode == 0) {
        uint64_t v = 1234;
        CHECK_ERR(weft_chan_send(w->b, &v, weft_after(WEFT_SEC(60))), 0);
    } else {
        CHECK_ERR(weft_chan_recv(w->c, &w->got, weft_after(WEFT_SEC(60))), 0);
    }
    return NULL;
}

static void check_woken(void)
{
    for (int kind = 0; kind < 4; kind++) {
        /* bit 0: mode; bit 1: the partner is a pthread */
        struct wake_arg w = {new_chan(0), new_chan(1), new_chan(0), kind & 1, 0};
        pthread_t pt;
        weft_t wt;
        if (kind & 2)
            CHECK_EQ(pthread_create(&pt, NULL, partner, &w), 0);
        else
            CHECK_ERR(weft_spawn(&wt, partner, &w, NULL), 0);
        uint64_t in = 0, out = 4321;
        weft_chan_op ops[3] = {{w.a, WEFT_RECV, &in}, {w.b, WEFT_RECV, &in}, {w.c, WEFT_SEND, &out}};
        int r = weft_chan_select(ops, 3, weft_after(WEFT_SEC(60)));
        if (kind & 2)
            CHECK_EQ(pthread_join(pt, NULL), 0);
        else
            CHECK_ERR(weft_join(wt, NULL, WEFT_FOREVER), 0);
        if (w.mode == 0) {
            CHECK_ERR(r, 1);
            CHECK_EQ(in, 1234);
        } else {
            CHECK_ERR(r, 2);
            CHECK_EQ(w.got, 4321);
            CHECK_EQ(in, 0);
        }
        weft_chan_free(w.a);
        weft_chan_free(w.b);
        weft_chan_free(w.c);
    }
}

static void *woken_thread(void *arg)
{
    (void)arg;
    check_woken();
    return U2P(1);
}

/* ---- close ---- */

static void *close_later(void *arg)
{
    usleep(2000);
    CHECK_ERR(weft_chan_close(arg), 0);
    return NULL;
}

static void check_close(void)
{
    weft_chan_t *a = new_chan(0), *b = new_chan(2);
    uint64_t in = 0, out = 1;
    put(b, 10);
    put(b, 11);
    CHECK_ERR(weft_chan_close(b), 0);
    weft_chan_op ops[2] = {{a, WEFT_RECV, &in}, {b, WEFT_RECV, &in}};
    CHECK_ERR(weft_chan_select(ops, 2, 0), 1);
    CHECK_EQ(in, 10);
    CHECK_ERR(weft_chan_select(ops, 2, WEFT_FOREVER), 1);
    CHECK_EQ(in, 11);
    CHECK_ERR(weft_chan_select(ops, 2, WEFT_FOREVER), -EPIPE);
    CHECK(ops[1].ch == NULL && ops[0].ch == a);
    CHECK_ERR(weft_chan_select(ops, 2, 0), -ETIMEDOUT);

    weft_chan_op snd[2] = {{a, WEFT_SEND, &out}, {b, WEFT_SEND, &out}};
    CHECK_ERR(weft_chan_select(snd, 2, WEFT_FOREVER), -EPIPE);
    CHECK(snd[1].ch == NULL && snd[0].ch == a);

    /* Closed while the select waits, from a weft thread and a pthread. */
    for (int k = 0; k < 2; k++) {
        weft_chan_t *c = new_chan((size_t)k);
        weft_chan_op w[3] = {{a, WEFT_RECV, &in}, {c, WEFT_RECV, &in}, {a, WEFT_SEND, &out}};
        weft_t wt;
        pthread_t pt;
        if (k)
            CHECK_EQ(pthread_create(&pt, NULL, close_later, c), 0);
        else
            CHECK_ERR(weft_spawn(&wt, close_later, c, NULL), 0);
        CHECK_ERR(weft_chan_select(w, 3, weft_after(WEFT_SEC(60))), -EPIPE);
        CHECK(w[1].ch == NULL && w[0].ch == a && w[2].ch == a);
        if (k)
            CHECK_EQ(pthread_join(pt, NULL), 0);
        else
            CHECK_ERR(weft_join(wt, NULL, WEFT_FOREVER), 0);
        weft_chan_free(c);
    }
    weft_chan_free(a);
    weft_chan_free(b);
}

/* ---- fairness ---- */

static void check_fair_counts(const char *what, long n0, long n1, long rounds)
{
    printf("fairness, %s: %ld / %ld of %ld rounds\n", what, n0, n1, rounds);
    CHECK_EQ(n0 + n1, rounds);
    CHECK(n0 * 10 >= rounds * 4 && n0 * 10 <= rounds * 6);
}

static void check_fairness(void)
{
    long rounds = 10000;
    weft_chan_t *a = new_chan((size_t)rounds), *b = new_chan((size_t)rounds);
    weft_chan_t *never = new_chan(0), *sink = new_chan((size_t)rounds);
    for (long i = 0; i < rounds; i++) {
        put(a, 1);
        put(b, 2);
    }
    uint64_t in = 0, out = 3;
    long n[3] = {0, 0, 0};

    /* Two receives. */
    weft_chan_op two[2] = {{a, WEFT_RECV, &in}, {b, WEFT_RECV, &in}};
    for (long i = 0; i < rounds / 2; i++) {
        int r = weft_chan_select(two, 2, 0);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(in, (uint64_t)r + 1);
        n[r]++;
    }
    /* Beside an operation that is never ready: a fixed or rotating start
     * would pick the one after it twice as often. */
    weft_chan_op three[3] = {{a, WEFT_RECV, &in}, {b, WEFT_RECV, &in}, {never, WEFT_RECV, &in}};
    for (long i = 0; i < rounds / 2; i++) {
        int r = weft_chan_select(three, 3, 0);
        CHECK(r == 0 || r == 1);
        n[r]++;
    }
    check_fair_counts("two receives", n[0], n[1], rounds);

    /* A send and a receive; src always holds one element, sink none. */
    n[0] = n[1] = 0;
    weft_chan_t *src = new_chan(1);
    weft_chan_op mixed[3] = {{never, WEFT_SEND, &out}, {sink, WEFT_SEND, &out}, {src, WEFT_RECV, &in}};
    for (long i = 0; i < rounds; i++) {
        CHECK_ERR2(weft_chan_send(src, &out, 0), 0, -ETIMEDOUT);
        int r = weft_chan_select(mixed, 3, 0);
        CHECK(r == 1 || r == 2);
        n[r - 1]++;
        if (r == 1)
            CHECK_ERR(weft_chan_recv(sink, NULL, 0), 0);
    }
    check_fair_counts("a send and a receive", n[0], n[1], rounds);
    weft_chan_free(a);
    weft_chan_free(b);
    weft_chan_free(never);
    weft_chan_free(sink);
    weft_chan_free(src);
}

/* ---- exactly once, through selects ---- */

#define NCHAN 4
#define SEL_PRODUCERS 4
#define PLAIN_PRODUCERS 2
#define SEL_CONSUMERS 6
#define PLAIN_CONSUMERS 2
#define NPROD (SEL_PRODUCERS + PLAIN_PRODUCERS)
#define NCONS (SEL_CONSUMERS + PLAIN_CONSUMERS)
#define NOUT 2
#define NALL (NCHAN + NOUT)
#define NRELAY 2
#define RELAY_HOLD 3

struct stress {
    weft_chan_t *ch[NCHAN]; /* producers send here */
    weft_chan_t *out[NOUT]; /* relays send here */
    long relayed;           /* atomic: elements that went through a relay */
    long n;         /* elements per producer */
    uint8_t *seen;  /* atomic counters */
    long received;  /* atomic */
};

struct who {
    struct stress *s;
    int id;
};

static void *sel_producer(void *arg)
{
    struct who *w = arg;
    struct stress *s = w->s;
    for (long i = 0; i < s->n; i++) {
        uint64_t v = (uint64_t)w->id << 32 | (uint64_t)i;
        weft_chan_op ops[NCHAN];
        for (int k = 0; k < NCHAN; k++)
            ops[k] = (weft_chan_op){s->ch[(k + w->id) % NCHAN], WEFT_SEND, &v};
        int r;
        int64_t d = i % 5 == 0 ? weft_after(WEFT_US(30)) : WEFT_FOREVER;
        while ((r = weft_chan_select(ops, NCHAN, d)) == -ETIMEDOUT)
            d = WEFT_FOREVER;
        CHECK(r >= 0 && r < NCHAN);
    }
    return NULL;
}

static void *plain_producer(void *arg)
{
    struct who *w = arg;
    struct stress *s = w->s;
    for (long i = 0; i < s->n; i++) {
        uint64_t v = (uint64_t)w->id << 32 | (uint64_t)i;
        CHECK_ERR(weft_chan_send(s->ch[w->id % NCHAN], &v, WEFT_FOREVER), 0);
    }
    return NULL;
}

static void account(struct stress *s, uint64_t v)
{
    uint64_t p = v >> 32, k = v & 0xffffffffu;
    if (p >= NPROD || (long)k >= s->n)
        check_failed("bad element %#llx\n", (unsigned long long)v);
    if (__atomic_fetch_add(&s->seen[p * (uint64_t)s->n + k], 1, __ATOMIC_RELAXED) != 0)
        check_failed("element %#llx received twice\n", (unsigned long long)v);
    __atomic_fetch_add(&s->received, 1, __ATOMIC_RELAXED);
}

static void *sel_consumer(void *arg)
{
    struct who *w = arg;
    struct stress *s = w->s;
    uint64_t v;
    weft_chan_t *all[NALL];
    memcpy(all, s->ch, sizeof s->ch);
    memcpy(all + NCHAN, s->out, sizeof s->out);
    weft_chan_op ops[NALL];
    for (int k = 0; k < NALL; k++) /* each its own order: rotated, odd ids reversed */
        ops[k] = (weft_chan_op){all[(w->id + (w->id % 2 ? NALL - k : k)) % NALL], WEFT_RECV, &v};
    int open = NALL;
    for (long i = 0; open > 0; i++) {
        v = UINT64_MAX;
        int64_t d = i % 3 == 0 ? weft_after(WEFT_US(20)) : WEFT_FOREVER;
        int r = weft_chan_select(ops, NALL, d);
        if (r == -ETIMEDOUT) {
            CHECK_EQ(v, UINT64_MAX);
            continue;
        }
        if (r == -EPIPE) {
            open--;
            continue;
        }
        CHECK(r >= 0 && r < NALL);
        account(s, v);
    }
    for (int k = 0; k < NALL; k++)
        CHECK(ops[k].ch == NULL);
    return NULL;
}

/* Moves elements from the input channels to the output channels, holding
 * up to RELAY_HOLD at a time, with one select that mixes receives (while
 * it has room) and sends (while it holds something). Ends once every
 * input channel is closed and it holds nothing. */
static void *relay(void *arg)
{
    struct who *w = arg;
    struct stress *s = w->s;
    weft_chan_t *in[NCHAN];
    for (int k = 0; k < NCHAN; k++)
        in[k] = s->ch[(k + w->id) % NCHAN];
    uint64_t held[RELAY_HOLD], v;
    int nheld = 0, open = NCHAN;
    while (open > 0 || nheld > 0) {
        weft_chan_op ops[NALL];
        for (int k = 0; k < NCHAN; k++)
            ops[k] = (weft_chan_op){nheld < RELAY_HOLD ? in[k] : NULL, WEFT_RECV, &v};
        for (int k = 0; k < NOUT; k++)
            ops[NCHAN + k] = (weft_chan_op){nheld > 0 ? s->out[k] : NULL, WEFT_SEND,
                                            &held[nheld > 0 ? nheld - 1 : 0]};
        int r = weft_chan_select(ops, NALL, WEFT_FOREVER);
        if (r == -EPIPE) {
            int found = 0;
            for (int k = 0; k < NCHAN; k++)
                if (in[k] && !ops[k].ch && nheld < RELAY_HOLD) {
                    in[k] = NULL; /* the closed input */
                    found++;
                }
            CHECK_EQ(found, 1);
            open--;
            continue;
        }
        CHECK(r >= 0 && r < NALL);
        if (r < NCHAN)
            held[nheld++] = v;
        else
            nheld--;
        __atomic_fetch_add(&s->relayed, r < NCHAN, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *plain_consumer(void *arg)
{
    struct who *w = arg;
    struct stress *s = w->s;
    uint64_t v;
    int rc;
    while ((rc = weft_chan_recv(s->ch[w->id % NCHAN], &v, WEFT_FOREVER)) == 0)
        account(s, v);
    CHECK_ERR(rc, -EPIPE);
    return NULL;
}

static long run_stress(long n)
{
    struct stress s = {.n = n};
    size_t caps[NCHAN] = {0, 0, 1, 4};
    for (int k = 0; k < NCHAN; k++)
        s.ch[k] = new_chan(caps[k]);
    for (int k = 0; k < NOUT; k++)
        s.out[k] = new_chan((size_t)k * 2);
    s.seen = calloc((size_t)(NPROD * n), 1);
    CHECK(s.seen != NULL);

    struct who pw[NPROD], cw[NCONS];
    weft_t pt[NPROD], ct[NCONS];
    pthread_t pp[NPROD], cp[NCONS];
    for (int i = 0; i < NCONS; i++) {
        cw[i] = (struct who){&s, i};
        void *(*fn)(void *) = i < SEL_CONSUMERS ? sel_consumer : plain_consumer;
        if (i % 3 == 2)
            CHECK_EQ(pthread_create(&cp[i], NULL, fn, &cw[i]), 0);
        else
            CHECK_ERR(weft_spawn(&ct[i], fn, &cw[i], NULL), 0);
    }
    struct who rw[NRELAY];
    weft_t rt[NRELAY];
    pthread_t rp;
    for (int i = 0; i < NRELAY; i++) {
        rw[i] = (struct who){&s, i};
        if (i == 1)
            CHECK_EQ(pthread_create(&rp, NULL, relay, &rw[i]), 0);
        else
            CHECK_ERR(weft_spawn(&rt[i], relay, &rw[i], NULL), 0);
    }
    for (int i = 0; i < NPROD; i++) {
        pw[i] = (struct who){&s, i};
        void *(*fn)(void *) = i < SEL_PRODUCERS ? sel_producer : plain_producer;
        if (i % 3 == 2)
            CHECK_EQ(pthread_create(&pp[i], NULL, fn, &pw[i]), 0);
        else
            CHECK_ERR(weft_spawn(&pt[i], fn, &pw[i], NULL), 0);
    }
    for (int i = 0; i < NPROD; i++) {
        if (i % 3 == 2)
            CHECK_EQ(pthread_join(pp[i], NULL), 0);
        else
            CHECK_ERR(weft_join(pt[i], NULL, WEFT_FOREVER), 0);
    }
    for (int k = 0; k < NCHAN; k++)
        CHECK_ERR(weft_chan_close(s.ch[k]), 0);
    for (int i = 0; i < NRELAY; i++) {
        if (i == 1)
            CHECK_EQ(pthread_join(rp, NULL), 0);
        else
            CHECK_ERR(weft_join(rt[i], NULL, WEFT_FOREVER), 0);
    }
    for (int k = 0; k < NOUT; k++)
        CHECK_ERR(weft_chan_close(s.out[k]), 0);
    for (int i = 0; i < NCONS; i++) {
        if (i % 3 == 2)
            CHECK_EQ(pthread_join(cp[i], NULL), 0);
        else
            CHECK_ERR(weft_join(ct[i], NULL, WEFT_FOREVER), 0);
    }
    CHECK_EQ(s.received, NPROD * n);
    for (long i = 0; i < NPROD * n; i++)
        if (s.seen[i] != 1)
            check_failed("element %ld received %d times\n", i, s.seen[i]);
    for (int k = 0; k < NCHAN; k++)
        weft_chan_free(s.ch[k]);
    for (int k = 0; k < NOUT; k++)
        weft_chan_free(s.out[k]);
    free(s.seen);
    return s.relayed;
}

static void run_stress_child(const char *workers)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc(sizeof(char *) * (n + 2));
    CHECK(env != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WEFT_WORKERS=", 13) != 0)
            env[k++] = environ[i];
    char var[32];
    snprintf(var, sizeof var, "WEFT_WORKERS=%s", workers);
    env[k++] = var;
    env[k] = NULL;
    char *argv[] = {"t_chan_select", "stress", NULL};
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    free(env);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        check_failed("WEFT_WORKERS=%s: child failed, status 0x%x\n", workers, status);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "stress")) {
        long n = test_scale(10000);
        int64_t t0 = weft_now();
        long relayed = run_stress(n);
        printf("stress, WEFT_WORKERS=%s: %d x %ld elements (%ld through relays) in %.0f ms\n",
               getenv("WEFT_WORKERS"), NPROD, n, relayed, (double)(weft_now() - t0) / 1e6);
        return 0;
    }

    check_errors(); /* on main */
    check_ready();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, ready_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);

    check_woken(); /* main selects */
    CHECK_ERR(weft_spawn(&t, woken_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);

    check_close();
    check_fairness();

    run_stress_child("1");
    run_stress_child("2");
    run_stress_child("8");
    return 0;
}
