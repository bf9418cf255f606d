/*
 * init.c - starting the runtime, explicitly (weft_init) or on first use.
 *
 * Configuration, later sources winning: the defaults (one worker per CPU
 * the process may run on, 64 KiB stacks, a 10 ms time slice), weft_init's
 * config, then the environment: WEFT_WORKERS=n, WEFT_PREEMPT=on|calls|off
 * and WEFT_DEBUG=migrate,spare-exit.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define MIN_STACK (16 * 1024)
#define MAX_STACK ((size_t)1 << 30)
#define DEFAULT_SLICE_NS 10000000

/* Workers a runtime starts with by default: 0 for one per CPU; 1 in a
 * proc's child (weft__sched_reset_child). */
static int default_workers;

static int cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    return 1;
}

int weft__stack_size_ok(size_t size)
{
    return size >= MIN_STACK && size <= MAX_STACK;
}

static int configure(const weft_config *cfg)
{
    struct runtime *rt = &weft__rt;
    int workers = default_workers ? default_workers : cpus();
    size_t stack = WEFT_DEFAULT_STACK;
    int64_t slice = DEFAULT_SLICE_NS;
    bool preempt_signal = true;
    if (cfg) {
        if (cfg->time_slice)
            slice = cfg->time_slice < 0 ? 0 : cfg->time_slice;
        if (cfg->preempt_signal < 0)
            preempt_signal = false;
        if (cfg->workers < 0 || cfg->workers > WEFT_MAX_WORKERS)
            return -EINVAL;
        if (cfg->workers)
            workers = cfg->workers;
        if (cfg->stack_size) {
            if (!weft__stack_size_ok(cfg->stack_size))
                return -EINVAL;
            stack = cfg->stack_size;
        }
    }
    const char *env = getenv("WEFT_WORKERS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end || n < 1 || n > WEFT_MAX_WORKERS)
            weft__panic("WEFT_WORKERS=%s: expected a number from 1 to %d", env,
                        WEFT_MAX_WORKERS);
        workers = (int)n;
    }
    env = getenv("WEFT_PREEMPT");
    if (env && *env) {
        if (!strcmp(env, "off"))
            slice = 0;
        else if (!strcmp(env, "calls"))
            preempt_signal = false;
        else if (!strcmp(env, "on"))
            preempt_signal = true, slice = slice ? slice : DEFAULT_SLICE_NS;
        else
            weft__panic("WEFT_PREEMPT=%s: expected on, calls or off", env);
    }
    env = getenv("WEFT_DEBUG");
    rt->debug_migrate = env && strstr(env, "migrate");
    /* Spare kernel threads exit after 10 s unused; after 50 ms with
     * WEFT_DEBUG=spare-exit, so that a test sees them go. */
    rt->spare_idle_ns = env && strstr(env, "spare-exit") ? 50000000 : 10000000000;

    weft__stack_init();
    size_t page = weft__page_size();
    rt->nworkers = workers;
    rt->slice = slice;
    rt->preempt_signal = preempt_signal;
    rt->stack_size = (stack + page - 1) & ~(page - 1);
    return 0;
}

static int start(const weft_config *cfg)
{
    struct runtime *rt = &weft__rt;
    uint32_t expected = 0;
    if (!cas_seq(&rt->state, &expected, 1)) {
        /* Someone else is starting it; wait until they are done. */
        while (load_acquire(&rt->state) == 1)
            sched_yield();
        return load_acquire(&rt->state) == 2 ? -EBUSY : -EAGAIN;
    }
    int r = configure(cfg);
    if (r == 0) {
        weft__preempt_init(); /* before the workers unblock its signal */
        r = weft__workers_start();
    }
    if (r < 0) {
        store_release(&rt->state, 0);
        return r;
    }
    weft__overflow_init();
    weft__monitor_start();
    /* Pairs with weft__ensure_started and with the workers, which wait
     * for it before they schedule (worker.c, kthread_main). */
    store_release(&rt->state, 2);
    weft__futex_wake(&rt->state, INT_MAX);
    return 0;
}

int weft_init(const weft_config *cfg)
{
    if (load_acquire(&weft__rt.state) != 0)
        return -EBUSY;
    return start(cfg);
}

/* A fork child of a running process (proc/spawn.c), or an exec'd proc
 * child: the runtime counts as not started, with nothing of the parent's
 * (workers, queues, the monitor), and this kernel thread is a plain one.
 * The worker and kthread arrays of the parent stay allocated, unreferenced.
 * The next start makes one worker unless told otherwise. */
void weft__sched_reset_child(void)
{
    memset(&weft__rt, 0, sizeof weft__rt);
    weft__kthread_set(NULL);
    default_workers = 1;
}

void weft__start_default(void)
{
    int r = start(NULL);
    if (r < 0 && r != -EBUSY)
        weft__panic("cannot start the runtime (error %d)", -r);
}
