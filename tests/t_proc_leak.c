/*
 * t_proc_leak.c - 1,000 spawn/free cycles in each mode, fork and exec
 * (times WEFT_TEST_SCALE), leave the parent's open fds, its mappings and
 * its children as they were: no leaked fd, mapping or zombie, whether the
 * child was freed idle, after a crash or after a deadline kill.
 */
#include "proctest.h"

static ssize_t die(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    _exit(9);
}
WEFT_PROC_ENTRY("die", die);

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void cycles(int mode, long n)
{
    for (long i = 0; i < n; i++) {
        weft_proc_opts o = {.mode = mode, .shared_size = 4096};
        weft_proc_t *p;
        CHECK_ERR(weft_proc_new(&p, &o), 0);
        switch (i % 4) {
        case 0:
            break; /* never started */
        case 1:
            pt_call_pid(p);
            break;
        case 2:
            CHECK_ERR(weft_proc_call(p, "die", NULL, 0, NULL, 0, WEFT_FOREVER), -ECHILD);
            break;
        default:
            CHECK_ERR(weft_proc_call(p, "hang", NULL, 0, NULL, 0, weft_after(WEFT_MS(1))),
                      -ETIMEDOUT);
        }
        CHECK_ERR(weft_proc_free(p), 0);
    }
}

static void *run(void *arg)
{
    (void)arg;
    /* Warm up: the forker thread, the poller's epoll fd, the stack caches. */
    cycles(WEFT_PROC_FORK, 4);
    cycles(WEFT_PROC_EXEC, 4);
    int fds = pt_count_fds(), maps = count_maps();
    cycles(WEFT_PROC_FORK, test_scale(1000));
    cycles(WEFT_PROC_EXEC, test_scale(1000));
    CHECK_EQ(pt_count_fds(), fds);
    CHECK(!pt_has_children());
    int now = count_maps();
    /* Mappings come and go with malloc and stacks; the procs' regions
     * alone would add thousands. */
    if (now > maps + 16)
        check_failed("mappings: %d before, %d after\n", maps, now);
    return NULL;
}

int main(void)
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, run, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    printf("ok\n");
    return 0;
}
