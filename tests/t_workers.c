/*
 * t_workers: the same workload gives the same result whatever the number of
 * workers, and the worker count can be set by weft_init and by WEFT_WORKERS.
 *
 * The workload: a token passed around a ring of 16 threads with
 * weft_park/weft_unpark, a binary spawn tree of 1,024 leaves where each node
 * joins its children, and 32 threads summing with a weft_yield every few
 * steps. Its checksum is computed independently and compared. A
 * WEFT_TEST_SCALE below 1 makes the tree smaller: a scaled-down run is
 * usually one under ThreadSanitizer, where a thread costs milliseconds.
 *
 * Run without arguments, the program runs the workload itself (default
 * workers: the CPUs, 2 here) and then runs itself again (fork + exec of
 * /proc/self/exe), once per configuration:
 *
 *   config 1 / config 8   weft_init({.workers = N}), WEFT_WORKERS unset
 *   env 1 / env 8         WEFT_WORKERS=N, no weft_init (implicit start)
 *   override 8            WEFT_WORKERS=1 and weft_init({.workers = 8}):
 *                         the environment wins, and it must still work
 *   bad                   weft_init({.workers = -1}) gives -EINVAL and
 *                         leaves the runtime unstarted, so a second
 *                         weft_init({.workers = 2}) succeeds
 *
 * Each run then counts its worker kernel threads (named weft-m<id>) and
 * compares with the setting. Where weft_init starts the runtime, the count
 * is also taken the moment it returns, when each worker must already have
 * its name and the one descriptor it keeps (its /proc stat file, opened
 * before weft_init returns, so that no number the program closes later is
 * taken by a worker starting late). Eight workers on a 2-core machine means more
 * kernel threads than CPUs; the workload must still finish with the right
 * result. The highest number
 * of threads seen running at once is printed, not asserted (it depends on
 * timing).
 */
#include "check.h"

#include <ctype.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

extern char **environ;

/* ---- token ring ---- */

#define RING 16
#define LAPS 200
static uint32_t token;

static void *ring_member(void *arg)
{
    uint32_t me = (uint32_t)P2U(arg);
    uint64_t seen = 0;
    for (int lap = 0; lap < LAPS; lap++) {
        uint32_t v;
        while ((v = __atomic_load_n(&token, __ATOMIC_ACQUIRE)) % RING != me) {
            int r = weft_park(&token, v, WEFT_FOREVER);
            CHECK(r == 0 || r == -EAGAIN);
        }
        seen += v;
        __atomic_store_n(&token, v + 1, __ATOMIC_RELEASE);
        weft_unpark(&token, -1);
    }
    return U2P(seen);
}

/* ---- spawn tree ---- */

/* Depth of the tree: 10 (1,024 leaves), less when scaled down. */
static int tree_depth(void)
{
    long leaves = test_scale(1024);
    int depth = 1;
    while (depth < 10 && (2L << depth) <= leaves)
        depth++;
    return depth;
}

static void *tree(void *arg)
{
    uintptr_t a = P2U(arg); /* depth in the low 8 bits, leaf index above */
    uintptr_t depth = a & 0xff, index = a >> 8;
    if (depth == 0)
        return U2P(index);
    weft_t l, r;
    CHECK_ERR(weft_spawn(&l, tree, U2P(((index * 2) << 8) | (depth - 1)), NULL), 0);
    CHECK_ERR(weft_spawn(&r, tree, U2P(((index * 2 + 1) << 8) | (depth - 1)), NULL), 0);
    void *lv, *rv;
    CHECK_ERR(weft_join(l, &lv, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(r, &rv, WEFT_FOREVER), 0);
    return U2P(P2U(lv) + P2U(rv));
}

/* ---- yielding sums ---- */

#define SUMMERS 32
#define SUM_TO  1000
static int running, max_running;

static void *summer(void *arg)
{
    uint64_t k = P2U(arg), s = 0;
    for (uint64_t i = 1; i <= SUM_TO; i++) {
        int now = __atomic_add_fetch(&running, 1, __ATOMIC_RELAXED);
        int seen = __atomic_load_n(&max_running, __ATOMIC_RELAXED);
        while (now > seen && !__atomic_compare_exchange_n(&max_running, &seen, now, 0,
                                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
        s += i * k;
        __atomic_sub_fetch(&running, 1, __ATOMIC_RELAXED);
        if (i % 10 == 0)
            weft_yield();
    }
    return U2P(s);
}

static void workload(const char *what)
{
    weft_t ring[RING], root, sums[SUMMERS];
    __atomic_store_n(&token, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < RING; i++)
        CHECK_ERR(weft_spawn(&ring[i], ring_member, U2P(i), NULL), 0);
    int depth = tree_depth();
    CHECK_ERR(weft_spawn(&root, tree, U2P(depth), NULL), 0);
    for (int i = 0; i < SUMMERS; i++)
        CHECK_ERR(weft_spawn(&sums[i], summer, U2P(i + 1), NULL), 0);

    for (int i = 0; i < RING; i++) {
        void *r;
        CHECK_ERR(weft_join(ring[i], &r, WEFT_FOREVER), 0);
        uint64_t want = 0; /* member i saw i, i+RING, i+2*RING, ... */
        for (int lap = 0; lap < LAPS; lap++)
            want += (uint64_t)(i + lap * RING);
        CHECK_EQ(P2U(r), want);
    }
    CHECK_EQ(__atomic_load_n(&token, __ATOMIC_ACQUIRE), RING * LAPS);

    void *r;
    CHECK_ERR(weft_join(root, &r, WEFT_FOREVER), 0);
    uint64_t leaves = (uint64_t)1 << depth;
    CHECK_EQ(P2U(r), leaves * (leaves - 1) / 2); /* leaves 0..leaves-1 */

    for (int i = 0; i < SUMMERS; i++) {
        CHECK_ERR(weft_join(sums[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), (uint64_t)(i + 1) * SUM_TO * (SUM_TO + 1) / 2);
    }
    printf("%s: workload correct; at most %d threads seen running at once\n", what,
           __atomic_load_n(&max_running, __ATOMIC_RELAXED));
}

/* How many entries of the /proc directory dir match: match gets the
 * entry's full path (the entry may vanish meanwhile; match then says no). */
static int count_proc(const char *dir, bool (*match)(const char *path))
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        n += match(path);
    }
    closedir(d);
    return n;
}

/* A kernel thread that runs a worker: weft names them weft-m<id> (the
 * monitor is weft-monitor). */
static bool is_worker(const char *task)
{
    char path[320], comm[32] = "";
    snprintf(path, sizeof path, "%s/comm", task);
    FILE *f = fopen(path, "r");
    if (!f)
        return false; /* the thread ended meanwhile */
    bool yes = fgets(comm, sizeof comm, f) && !strncmp(comm, "weft-m", 6) && isdigit(comm[6]);
    fclose(f);
    return yes;
}

/* A descriptor open on a kernel thread's /proc stat file. */
static bool is_stat_fd(const char *fd)
{
    char target[256];
    ssize_t len = readlink(fd, target, sizeof target - 1);
    if (len <= 5)
        return false;
    target[len] = 0;
    return strstr(target, "/task/") && !strcmp(target + len - 5, "/stat");
}

static int worker_threads(void)
{
    return count_proc("/proc/self/task", is_worker);
}

static int stat_fds(void)
{
    return count_proc("/proc/self/fd", is_stat_fd);
}

/* Right after weft_init: every worker is named and has its descriptor. */
static void check_started(int want)
{
    CHECK_EQ(worker_threads(), want);
    CHECK_EQ(stat_fds(), want);
}

/* Runs this program again with argv[1..2] = mode, arg and WEFT_WORKERS set
 * to workers_env (NULL: unset); the child must exit 0. */
static void run_self(const char *mode, const char *arg, const char *workers_env)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc(sizeof(char *) * (n + 2));
    CHECK(env != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "WEFT_WORKERS=", 13) != 0)
            env[k++] = environ[i];
    }
    char setting[64];
    if (workers_env) {
        snprintf(setting, sizeof(setting), "WEFT_WORKERS=%s", workers_env);
        env[k++] = setting;
    }
    env[k] = NULL;

    char *argv[] = {"t_workers", (char *)mode, (char *)arg, NULL};
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
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        check_failed("mode '%s %s' with WEFT_WORKERS=%s failed: status 0x%x\n", mode,
                     arg ? arg : "", workers_env ? workers_env : "(unset)", status);
    }
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        workload("default workers");
        /* Default: a worker per CPU this process may use. */
        cpu_set_t cpus;
        CHECK_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
        const char *env = getenv("WEFT_WORKERS");
        CHECK_EQ(worker_threads(), env ? atoi(env) : CPU_COUNT(&cpus));
        run_self("config", "1", NULL);
        run_self("config", "8", NULL);
        run_self("env", "", "1");
        run_self("env", "", "8");
        run_self("override", "8", "1");
        run_self("bad", "", NULL);
        return 0;
    }

    const char *mode = argv[1];
    char what[128];
    snprintf(what, sizeof(what), "%s %s (WEFT_WORKERS=%s)", mode, argc > 2 ? argv[2] : "",
             getenv("WEFT_WORKERS") ? getenv("WEFT_WORKERS") : "unset");
    if (!strcmp(mode, "config") || !strcmp(mode, "override")) {
        weft_config cfg = {.workers = atoi(argv[2])};
        CHECK_EQ(stat_fds(), 0);
        CHECK_ERR(weft_init(&cfg), 0);
        check_started(!strcmp(mode, "override") ? 1 : cfg.workers);
    } else if (!strcmp(mode, "bad")) {
        weft_config bad = {.workers = -1};
        CHECK_ERR(weft_init(&bad), -EINVAL);
        CHECK_EQ(worker_threads(), 0);
        weft_config good = {.workers = 2};
        CHECK_ERR(weft_init(&good), 0);
        check_started(2);
    } else {
        CHECK(!strcmp(mode, "env"));
    }
    workload(what);
    workload(what); /* again, on the now warm caches */
    CHECK_ERR(weft_init(NULL), -EBUSY);
    /* The setting took: one kernel thread per worker (nothing here blocks,
     * so no spare was made). */
    int want = !strcmp(mode, "override") ? 1 : !strcmp(mode, "bad") ? 2 : atoi(argc > 2 ? argv[2] : "0");
    if (!strcmp(mode, "env"))
        want = atoi(getenv("WEFT_WORKERS"));
    CHECK_EQ(worker_threads(), want);
    return 0;
}
