/*
 * t_proc_call.c - round trips to a proc's child in fork and exec mode:
 * results, errors, calls from weft threads and from main, 10,000 calls in
 * a row on one warm child, and the child's isolation (its own pid and
 * process group, its fds, a parent global set before the start seen in
 * fork mode only, the shared area seen by both).
 */
#include "proctest.h"

#include <fcntl.h>
#include <sys/syscall.h>

static int parent_global;

static ssize_t read_global(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len;
    CHECK(cap >= sizeof parent_global);
    memcpy(out, &parent_global, sizeof parent_global);
    return sizeof parent_global;
}
WEFT_PROC_ENTRY("global", read_global);

static ssize_t fail_with(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)out, (void)cap;
    int e;
    CHECK_EQ(len, sizeof e);
    memcpy(&e, in, sizeof e);
    return -e;
}
WEFT_PROC_ENTRY("fail", fail_with);

static ssize_t too_much(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out;
    return (ssize_t)cap + 1;
}
WEFT_PROC_ENTRY("too_much", too_much);

/* Is fd open in the child? */
static ssize_t fd_open(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)len;
    int fd;
    memcpy(&fd, in, sizeof fd);
    CHECK(cap >= 1);
    *(char *)out = fcntl(fd, F_GETFD) >= 0;
    return 1;
}
WEFT_PROC_ENTRY("fd_open", fd_open);

/* The child's pgid; and it writes "child" into the shared area. */
static ssize_t pgid_and_share(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out,
                              size_t cap)
{
    (void)in, (void)len;
    size_t size;
    char *s = weft_proc_ctx_shared(ctx, &size);
    CHECK(s != NULL && size == 8192);
    CHECK(!strcmp(s, "parent"));
    strcpy(s, "child");
    int64_t g = getpgid(0);
    CHECK(cap >= sizeof g);
    memcpy(out, &g, sizeof g);
    return sizeof g;
}
WEFT_PROC_ENTRY("pgid", pgid_and_share);

static void round_trips(weft_proc_t *p, long n)
{
    char in[64], out[64];
    for (long i = 0; i < n; i++) {
        for (int j = 0; j < 64; j++)
            in[j] = (char)(i + j);
        memset(out, 0, sizeof out);
        ssize_t r = weft_proc_call(p, "echo", in, sizeof in, out, sizeof out, WEFT_FOREVER);
        CHECK_EQ(r, 64);
        CHECK(!memcmp(in, out, 64));
    }
}

struct mode_arg {
    int mode;
    weft_proc_t *p;
};

static void *in_weft(void *arg)
{
    struct mode_arg *a = arg;
    round_trips(a->p, test_scale(10000));
    return NULL;
}

static void one_mode(int mode)
{
    int secret = open("/dev/null", O_RDONLY); /* not close-on-exec, not kept */
    int kept = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(secret >= 3 && kept >= 3);
    weft_proc_opts o = {.mode = mode, .shared_size = 8192, .keep_fds = &kept, .nkeep_fds = 1};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, 0);
    CHECK_EQ(st.running, 0);

    size_t size;
    char *shared = weft_proc_shared(p, &size);
    CHECK(shared != NULL);
    CHECK_EQ(size, 8192);
    strcpy(shared, "parent");

    parent_global = 42;
    /* From main, a plain kernel thread. */
    round_trips(p, 10);
    int64_t pid = pt_call_pid(p);
    CHECK(pid != getpid());
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.pid, pid);
    CHECK_EQ(st.running, 1);
    CHECK_EQ(st.started, 1);
    /* Fork mode sees the parent's memory as of the start; exec does not. */
    int g = -1;
    CHECK_EQ(weft_proc_call(p, "global", NULL, 0, &g, sizeof g, WEFT_FOREVER), sizeof g);
    CHECK_EQ(g, mode == WEFT_PROC_FORK ? 42 : 0);
    int64_t pgid = 0;
    CHECK_EQ(weft_proc_call(p, "pgid", NULL, 0, &pgid, sizeof pgid, WEFT_FOREVER), sizeof pgid);
    CHECK_EQ(pgid, pid);
    CHECK(!strcmp(shared, "child"));
    char open_ = 9;
    CHECK_EQ(weft_proc_call(p, "fd_open", &secret, sizeof secret, &open_, 1, WEFT_FOREVER), 1);
    CHECK_EQ(open_, 0);
    CHECK_EQ(weft_proc_call(p, "fd_open", &kept, sizeof kept, &open_, 1, WEFT_FOREVER), 1);
    CHECK_EQ(open_, 1);

    /* Errors. */
    int e = EDOM;
    CHECK_ERR(weft_proc_call(p, "fail", &e, sizeof e, NULL, 0, WEFT_FOREVER), -EDOM);
    CHECK_ERR(weft_proc_call(p, "nosuch", NULL, 0, NULL, 0, WEFT_FOREVER), -ENOENT);
    char small[4];
    CHECK_ERR(weft_proc_call(p, "too_much", NULL, 0, small, sizeof small, WEFT_FOREVER), -EMSGSIZE);
    CHECK_ERR(weft_proc_call(p, "echo", "abcdefgh", 8, small, sizeof small, WEFT_FOREVER), -EMSGSIZE);
    CHECK_ERR(weft_proc_call(NULL, "echo", NULL, 0, NULL, 0, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_proc_call(p, NULL, NULL, 0, NULL, 0, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_proc_call(p, "echo", NULL, 5, NULL, 0, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_proc_call(p, "echo", NULL, 0, NULL, 5, WEFT_FOREVER), -EINVAL);
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK_ERR(weft_proc_call(p, longname, NULL, 0, NULL, 0, WEFT_FOREVER), -EINVAL);
    /* Zero-length argument and result. */
    CHECK_EQ(weft_proc_call(p, "echo", NULL, 0, NULL, 0, WEFT_FOREVER), 0);

    /* From a weft thread: many calls on the same warm child. */
    struct mode_arg a = {mode, p};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, in_weft, &a, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(pt_call_pid(p), pid);
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, 1);

    CHECK_ERR(weft_proc_free(p), 0);
    CHECK(!pt_has_children());
    close(secret);
    close(kept);
}

int main(void)
{
    weft_proc_opts bad = {.mode = 7};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &bad), -EINVAL);
    bad = (weft_proc_opts){.ring_size = 5000};
    CHECK_ERR(weft_proc_new(&p, &bad), -EINVAL);
    int low = 2;
    bad = (weft_proc_opts){.keep_fds = &low, .nkeep_fds = 1};
    CHECK_ERR(weft_proc_new(&p, &bad), -EINVAL);
    CHECK_ERR(weft_proc_new(NULL, NULL), -EINVAL);
    CHECK_ERR(weft_proc_free(NULL), 0);

    /* Defaults: fork mode, no shared area. */
    CHECK_ERR(weft_proc_new(&p, NULL), 0);
    size_t size = 1;
    CHECK(weft_proc_shared(p, &size) == NULL);
    CHECK_EQ(size, 0);
    round_trips(p, 3);
    CHECK_ERR(weft_proc_free(p), 0);

    one_mode(WEFT_PROC_FORK);
    one_mode(WEFT_PROC_EXEC);
    printf("ok\n");
    return 0;
}
