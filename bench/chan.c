/*
 * chan - channels: a ping-pong over rendezvous channels and a fan-out of
 * one producer to four consumers over a buffered channel.
 *
 * chan_pingpong: two weft threads, two unbuffered channels; one sends on
 * ping and receives on pong, the other receives on ping and sends on pong.
 * ns per round trip (two hand-offs). The runtime has its default workers
 * (the CPUs), as a weft program would. Baselines: two pthreads doing the
 * same through a one-slot mailbox with a pthread mutex and condition
 * variable (here); Go's unbuffered channels between two goroutines
 * (bench/go/chanpingpong.go, run by bench/run.sh when go is installed).
 *
 * chan_1p4c: one producer sends 2,000,000 64-bit integers into a channel
 * of capacity 1,024 and closes it; four consumers receive until it is
 * closed. Million items per second, from the spawns to the last join;
 * the consumers' sum is checked. Baselines: the same with pthreads over a
 * bounded ring with one mutex and two condition variables (here); Go
 * (bench/go/chanfanout.go, by bench/run.sh).
 *
 * Reported: the best of 5 runs after 1 warm-up, each figure beside its
 * baseline from the same run.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "bench.h"

/* ---- weft ping-pong ------------------------------------------------------ */

struct pp {
    weft_chan_t *ping, *pong;
    long n;
};

static void *pp_echo(void *arg)
{
    struct pp *p = arg;
    uint64_t v;
    for (long i = 0; i < p->n; i++) {
        int rc = weft_chan_recv(p->ping, &v, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "recv: %d", rc);
        v++;
        rc = weft_chan_send(p->pong, &v, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "send: %d", rc);
    }
    return NULL;
}

static void *pp_serve(void *arg)
{
    struct pp *p = arg;
    uint64_t v = 0;
    for (long i = 0; i < p->n; i++) {
        int rc = weft_chan_send(p->ping, &v, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "send: %d", rc);
        rc = weft_chan_recv(p->pong, &v, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "recv: %d", rc);
    }
    BENCH_CHECK(v == (uint64_t)p->n, "ping-pong count %llu, expected %ld", (unsigned long long)v,
                p->n);
    return NULL;
}

static double weft_pingpong(void *arg)
{
    struct pp p = {.n = *(long *)arg};
    BENCH_CHECK(weft_chan_new(&p.ping, sizeof(uint64_t), 0) == 0, "weft_chan_new");
    BENCH_CHECK(weft_chan_new(&p.pong, sizeof(uint64_t), 0) == 0, "weft_chan_new");
    weft_t a, b;
    int64_t t0 = bench_now();
    BENCH_CHECK(weft_spawn(&a, pp_echo, &p, NULL) == 0, "weft_spawn");
    BENCH_CHECK(weft_spawn(&b, pp_serve, &p, NULL) == 0, "weft_spawn");
    BENCH_CHECK(weft_join(b, NULL, WEFT_FOREVER) == 0, "weft_join");
    BENCH_CHECK(weft_join(a, NULL, WEFT_FOREVER) == 0, "weft_join");
    int64_t t1 = bench_now();
    weft_chan_free(p.ping);
    weft_chan_free(p.pong);
    return (double)(t1 - t0) / (double)p.n;
}

/* ---- pthread ping-pong: a one-slot mailbox, mutex and condvar ------------ */

struct mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int full;
    uint64_t v;
};

static void mb_put(struct mailbox *m, uint64_t v)
{
    pthread_mutex_lock(&m->mu);
    while (m->full)
        pthread_cond_wait(&m->cv, &m->mu);
    m->v = v;
    m->full = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static uint64_t mb_get(struct mailbox *m)
{
    pthread_mutex_lock(&m->mu);
    while (!m->full)
        pthread_cond_wait(&m->cv, &m->mu);
    uint64_t v = m->v;
    m->full = 0;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return v;
}

struct ppt {
    struct mailbox ping, pong;
    long n;
};

static void *ppt_echo(void *arg)
{
    struct ppt *p = arg;
    for (long i = 0; i < p->n; i++)
        mb_put(&p->pong, mb_get(&p->ping) + 1);
    return NULL;
}

static double pthread_pingpong(void *arg)
{
    struct ppt p = {.n = *(long *)arg};
    pthread_mutex_init(&p.ping.mu, NULL);
    pthread_cond_init(&p.ping.cv, NULL);
    pthread_mutex_init(&p.pong.mu, NULL);
    pthread_cond_init(&p.pong.cv, NULL);
    pthread_t t;
    int64_t t0 = bench_now();
    BENCH_CHECK(pthread_create(&t, NULL, ppt_echo, &p) == 0, "pthread_create");
    uint64_t v = 0;
    for (long i = 0; i < p.n; i++) {
        mb_put(&p.ping, v);
        v = mb_get(&p.pong);
    }
    pthread_join(t, NULL);
    int64_t t1 = bench_now();
    BENCH_CHECK(v == (uint64_t)p.n, "pthread ping-pong count");
    return (double)(t1 - t0) / (double)p.n;
}

/* ---- weft 1 producer, 4 consumers ---------------------------------------- */

#define CONSUMERS 4
#define FAN_CAP 1024

struct fan {
    weft_chan_t *c;
    long n;
    uint64_t sum; /* atomic */
};

static void *fan_produce(void *arg)
{
    struct fan *f = arg;
    for (uint64_t i = 1; i <= (uint64_t)f->n; i++) {
        int rc = weft_chan_send(f->c, &i, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "send: %d", rc);
    }
    weft_chan_close(f->c);
    return NULL;
}

static void *fan_consume(void *arg)
{
    struct fan *f = arg;
    uint64_t v, sum = 0;
    int rc;
    while ((rc = weft_chan_recv(f->c, &v, WEFT_FOREVER)) == 0)
        sum += v;
    BENCH_CHECK(rc == -EPIPE, "recv: %d", rc);
    __atomic_fetch_add(&f->sum, sum, __ATOMIC_RELAXED);
    return NULL;
}

/* Returns ns per item (the smaller the better, for bench_best). */
static double weft_fanout(void *arg)
{
    struct fan f = {.n = *(long *)arg};
    BENCH_CHECK(weft_chan_new(&f.c, sizeof(uint64_t), FAN_CAP) == 0, "weft_chan_new");
    weft_t p, c[CONSUMERS];
    int64_t t0 = bench_now();
    for (int i = 0; i < CONSUMERS; i++)
        BENCH_CHECK(weft_spawn(&c[i], fan_consume, &f, NULL) == 0, "weft_spawn");
    BENCH_CHECK(weft_spawn(&p, fan_produce, &f, NULL) == 0, "weft_spawn");
    BENCH_CHECK(weft_join(p, NULL, WEFT_FOREVER) == 0, "weft_join");
    for (int i = 0; i < CONSUMERS; i++)
        BENCH_CHECK(weft_join(c[i], NULL, WEFT_FOREVER) == 0, "weft_join");
    int64_t t1 = bench_now();
    uint64_t n = (uint64_t)f.n;
    BENCH_CHECK(f.sum == n * (n + 1) / 2, "fan-out sum %llu", (unsigned long long)f.sum);
    weft_chan_free(f.c);
    return (double)(t1 - t0) / (double)f.n;
}

/* ---- pthread 1 producer, 4 consumers: a bounded ring, mutex, 2 condvars -- */

struct ring {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    uint64_t buf[FAN_CAP];
    size_t head, count;
    int closed;
    long n;
    uint64_t sum;
};

static void *ring_produce(void *arg)
{
    struct ring *r = arg;
    for (uint64_t i = 1; i <= (uint64_t)r->n; i++) {
        pthread_mutex_lock(&r->mu);
        while (r->count == FAN_CAP)
            pthread_cond_wait(&r->not_full, &r->mu);
        r->buf[(r->head + r->count) % FAN_CAP] = i;
        r->count++;
        pthread_cond_signal(&r->not_empty);
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_lock(&r->mu);
    r->closed = 1;
    pthread_cond_broadcast(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *ring_consume(void *arg)
{
    struct ring *r = arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (r->count == 0 && !r->closed)
            pthread_cond_wait(&r->not_empty, &r->mu);
        if (r->count == 0) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        sum += r->buf[r->head];
        r->head = (r->head + 1) % FAN_CAP;
        r->count--;
        pthread_cond_signal(&r->not_full);
        pthread_mutex_unlock(&r->mu);
    }
    __atomic_fetch_add(&r->sum, sum, __ATOMIC_RELAXED);
    return NULL;
}

static double pthread_fanout(void *arg)
{
    struct ring *r = calloc(1, sizeof *r);
    BENCH_CHECK(r != NULL, "calloc");
    r->n = *(long *)arg;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->not_empty, NULL);
    pthread_cond_init(&r->not_full, NULL);
    pthread_t p, c[CONSUMERS];
    int64_t t0 = bench_now();
    for (int i = 0; i < CONSUMERS; i++)
        BENCH_CHECK(pthread_create(&c[i], NULL, ring_consume, r) == 0, "pthread_create");
    BENCH_CHECK(pthread_create(&p, NULL, ring_produce, r) == 0, "pthread_create");
    pthread_join(p, NULL);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    int64_t t1 = bench_now();
    uint64_t n = (uint64_t)r->n;
    BENCH_CHECK(r->sum == n * (n + 1) / 2, "pthread fan-out sum");
    double ns = (double)(t1 - t0) / (double)r->n;
    free(r);
    return ns;
}

int main(void)
{
    bench_header("chan: ping-pong over two rendezvous channels, ns per round trip; 1 producer "
                 "and 4 consumers over a channel of capacity 1024, million items/s (weft: "
                 "default workers; pthread: mutex + condvar)",
                 "best of 5 runs after 1 warm-up");

    long pn = bench_size(200000, 1000);
    double w = bench_best_in_weft(weft_pingpong, &pn, 5);
    long ptn = bench_size(50000, 1000);
    double b = bench_best(pthread_pingpong, &ptn, 5);
    bench_print("chan_pingpong.weft", w, "ns/roundtrip");
    bench_print("chan_pingpong.pthread", b, "ns/roundtrip");
    bench_ratio("chan_pingpong.ratio", w, b, "pthread/weft");

    long fn = bench_size(2000000, 10000);
    double fw = bench_best_in_weft(weft_fanout, &fn, 5);
    long ftn = bench_size(500000, 10000);
    double fb = bench_best(pthread_fanout, &ftn, 5);
    bench_print("chan_1p4c.weft", 1e3 / fw, "Mitems/s");
    bench_print("chan_1p4c.pthread", 1e3 / fb, "Mitems/s");
    /* ns per item in, so the ratio is weft/pthread throughput: above 1, weft wins. */
    bench_ratio("chan_1p4c.ratio", fw, fb, "weft/pthread throughput");
    return 0;
}
