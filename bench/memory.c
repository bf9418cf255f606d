/*
 * memory - resident memory per idle thread, at 100,000 and 1,000,000 threads.
 *
 * For each size N, in a fresh child process (so stacks cached by one size do
 * not hide the cost of the next): a driver weft thread reads the resident set
 * (/proc/self/statm), spawns N threads with default attributes that each bump
 * a shared counter and park on a shared word, waits until the counter reaches
 * N (and a little longer, so the last ones are really parked), and reads the
 * resident set again. The difference divided by N is the figure, in KiB per
 * thread; one 4 KiB page is the floor for page-granular stacks. Then the
 * word is released, every thread is woken with weft_unpark and joined.
 *
 * Also printed: the time to create the N parked threads (spawn until the
 * last one parked), and how much of it is first-touch page faults. On these
 * virtual machines a fault on a fresh page costs several microseconds, far
 * more than a spawn, so this run measures one fault (mmap a few thousand
 * pages, touch each once), counts the faults taken while creating
 * (getrusage) and prints their share of the time, with the kernel and user
 * CPU time the creation took. Also: the number of memory mappings the process
 * holds with all threads alive (Linux allows vm.max_map_count, 65530 by
 * default, so a mapping per stack cannot reach a million threads).
 *
 * Baseline: Go, when installed: bench/go/memory.go parks N goroutines on a
 * channel the same way; bench/run.sh runs it and prints the ratio. There is
 * no pthread figure: a pthread costs at least its 8 MiB stack reservation
 * and a kernel task, and a million of them do not fit a default system.
 *
 * WEFT_BENCH_SCALE scales N. One run per size (memory is not noisy the way
 * time is); the fault cost is the best of 3.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ---- one page fault ---------------------------------------------------- */

/* ns to fault in one fresh anonymous 4 KiB page (best of 3 mappings). */
static double page_fault_ns(void)
{
    const size_t pages = 4096, pg = (size_t)sysconf(_SC_PAGESIZE);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        char *m = mmap(NULL, pages * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        BENCH_CHECK(m != MAP_FAILED, "mmap: %m");
        madvise(m, pages * pg, MADV_NOHUGEPAGE); /* 4 KiB faults, as stacks get */
        int64_t t0 = bench_now();
        for (size_t i = 0; i < pages; i++)
            ((volatile char *)m)[i * pg] = 1;
        int64_t t1 = bench_now();
        munmap(m, pages * pg);
        double v = (double)(t1 - t0) / (double)pages;
        if (rep == 0 || v < best)
            best = v;
    }
    return best;
}

/* ---- process figures --------------------------------------------------- */

/* Resident set of this process in bytes. */
static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    BENCH_CHECK(f != NULL, "open /proc/self/statm: %m");
    long size, resident;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    BENCH_CHECK(n == 2, "read /proc/self/statm");
    return resident * sysconf(_SC_PAGESIZE);
}

static double tv_ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
}

/* Lines of /proc/self/maps: the memory mappings this process holds. */
static long mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    long lines = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

/* ---- the idle threads -------------------------------------------------- */

static atomic_uint parked; /* threads about to park; bumped right before parking */
static uint32_t gate;      /* 0 while the threads must stay parked; atomic */

static void *idler(void *arg)
{
    atomic_fetch_add(&parked, 1);
    while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) == 0)
        weft_park(&gate, 0, WEFT_FOREVER);
    return arg;
}

struct run {
    long n;             /* threads */
    const char *label;  /* "memory_100k" */
    double fault_ns;    /* cost of one page fault, measured by the parent */
    weft_t *handles;    /* n handles, allocated and touched before measuring */
};

static void *driver(void *p)
{
    struct run *r = p;
    char name[64], msg[400];
    long pg = sysconf(_SC_PAGESIZE);

    /* Let the runtime settle (its workers have started) before the baseline. */
    uint32_t never = 0;
    weft_park(&never, 0, weft_after(WEFT_MS(10)));
    long before = rss_bytes();

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t0 = bench_now();
    for (long i = 0; i < r->n; i++) {
        int rc = weft_spawn(&r->handles[i], idler, NULL, NULL);
        BENCH_CHECK(rc == 0, "weft_spawn #%ld of %ld: %d", i, r->n, rc);
    }
    while (atomic_load(&parked) < (unsigned)r->n)
        weft_yield();
    int64_t t1 = bench_now();
    getrusage(RUSAGE_SELF, &ru1);
    /* The counter is bumped just before parking: give the last few time to park. */
    weft_park(&never, 0, weft_after(WEFT_MS(20)));
    long after = rss_bytes();
    long maps = mappings();

    double kib = (double)(after - before) / 1024.0 / (double)r->n;
    double create_ns = (double)(t1 - t0) / (double)r->n;
    snprintf(name, sizeof name, "%s.weft", r->label);
    bench_print(name, kib, "KiB/thread");
    snprintf(name, sizeof name, "%s.create", r->label);
    bench_print(name, create_ns, "ns/thread");
    snprintf(name, sizeof name, "%s.maps", r->label);
    bench_print_int(name, maps, "mappings");
    /* How much of the creation time went to the kernel, mostly page faults. */
    long faults = ru1.ru_minflt - ru0.ru_minflt + ru1.ru_majflt - ru0.ru_majflt;
    double sys_ms = tv_ms(ru1.ru_stime) - tv_ms(ru0.ru_stime);
    double user_ms = tv_ms(ru1.ru_utime) - tv_ms(ru0.ru_utime);
    double wall_ms = (double)(t1 - t0) / 1e6;
    double fault_share = 100.0 * (double)faults * r->fault_ns / (double)(t1 - t0);
    double cpu_ms = sys_ms + user_ms;
    snprintf(msg, sizeof msg,
             "%s: creating took %.0f ms wall and %.0f ms CPU on all workers, %.0f%% of it in "
             "the kernel (page faults, mmap); %ld page faults (%.2f per thread, %.0f pages "
             "resident) at >= %.0f ns each are >= %.0f%% of the wall time",
             r->label, wall_ms, cpu_ms, cpu_ms > 0 ? 100.0 * sys_ms / cpu_ms : 0.0, faults,
             (double)faults / (double)r->n, (double)(after - before) / (double)pg, r->fault_ns,
             fault_share);
    bench_note(msg);

    int64_t t2 = bench_now();
    __atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
    weft_unpark(&gate, -1);
    for (long i = 0; i < r->n; i++) {
        int rc = weft_join(r->handles[i], NULL, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "weft_join #%ld: %d", i, rc);
    }
    int64_t t3 = bench_now();
    snprintf(name, sizeof name, "%s.release_join", r->label);
    bench_print(name, (double)(t3 - t2) / (double)r->n, "ns/thread");
    return NULL;
}

/* "100k", "1M", or the plain number. */
static void label_for(long n, char *buf, size_t len)
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(buf, len, "memory_%ldM", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(buf, len, "memory_%ldk", n / 1000);
    else
        snprintf(buf, len, "memory_%ld", n);
}

/* Runs one size in this (child) process; exits. */
static _Noreturn void measure(long n, double fault_ns)
{
    char label[32];
    label_for(n, label, sizeof label);
    struct run r = {n, label, fault_ns, malloc((size_t)n * sizeof(weft_t))};
    BENCH_CHECK(r.handles != NULL, "malloc");
    memset(r.handles, 0, (size_t)n * sizeof(weft_t)); /* resident before the baseline */

    weft_t d;
    int rc = weft_spawn(&d, driver, &r, NULL);
    BENCH_CHECK(rc == 0, "weft_spawn driver: %d", rc);
    rc = weft_join(d, NULL, WEFT_FOREVER);
    BENCH_CHECK(rc == 0, "weft_join driver: %d", rc);
    fflush(stdout);
    exit(0);
}

int main(void)
{
    long sizes[2] = {bench_size(100000, 1000), bench_size(1000000, 1000)};

    bench_header("memory: resident KiB per idle (parked) thread, default 64 KiB stacks; "
                 "create = ns per thread from first spawn until all are parked",
                 "one run per size, each in a fresh child process");
    bench_note("note: creation time is dominated by first-touch page faults on this VM; "
               "memory.page_fault is what one costs here when the VM recycles a page it has "
               "touched before (a page the VM never touched costs several times more)");
    double fault_ns = page_fault_ns();
    bench_print("memory.page_fault", fault_ns, "ns/page");

    int failed = 0;
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        pid_t pid = fork();
        BENCH_CHECK(pid >= 0, "fork: %m");
        if (pid == 0)
            measure(sizes[i], fault_ns);
        int status;
        BENCH_CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %m");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench: FAILED: memory run with %ld threads: %s %d\n", sizes[i],
                    WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            failed = 1;
        }
    }
    return failed;
}
