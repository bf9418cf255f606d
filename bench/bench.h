/*
 * bench.h - helpers shared by the benchmark programs in bench/.
 *
 * Every benchmark prints a header line starting with '#' that says what it
 * measures and how repetitions are combined, then one line per figure:
 *
 *     name value unit
 *     create_join_1by1.weft 45.2 ns/thread
 *     create_join_1by1.pthread 10850.3 ns/thread
 *     create_join_1by1.ratio 240.1 x (pthread/weft)
 *
 * Ours and the baseline's figure always come from the same process run, so
 * the ratio is meaningful even on a noisy virtual machine where absolute
 * times drift between runs. bench/run.sh greps these lines to compute ratios
 * against baselines that live in other programs (Go, Boost).
 *
 * WEFT_BENCH_SCALE (a double, default 1) shrinks or grows every run size, so
 * CI can run the whole set quickly: sizes are multiplied by it and clamped to
 * a minimum that still measures something.
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "weft.h"

/* Nanoseconds on CLOCK_MONOTONIC (the clock weft uses too). */
static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* WEFT_BENCH_SCALE from the environment; 1 when unset or not a positive number. */
static inline double bench_scale(void)
{
    const char *s = getenv("WEFT_BENCH_SCALE");
    if (s == NULL || *s == '\0')
        return 1.0;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || !(v > 0)) {
        fprintf(stderr, "bench: ignoring bad WEFT_BENCH_SCALE '%s'\n", s);
        return 1.0;
    }
    return v;
}

/* n scaled by WEFT_BENCH_SCALE, never below min. */
static inline long bench_size(long n, long min)
{
    double v = (double)n * bench_scale();
    long r = v > 9e18 ? (long)9e18 : (long)v;
    return r < min ? min : r;
}

/* The header line of a benchmark: what it measures and how runs are combined. */
static inline void bench_header(const char *what, const char *method)
{
    printf("# %s; %s\n", what, method);
    fflush(stdout);
}

/* One figure: "name value unit". */
static inline void bench_print(const char *name, double value, const char *unit)
{
    printf("%s %.1f %s\n", name, value, unit);
    fflush(stdout);
}

/* Like bench_print with an integer value (counts, sums). */
static inline void bench_print_int(const char *name, long long value, const char *unit)
{
    printf("%s %lld %s\n", name, value, unit);
    fflush(stdout);
}

/*
 * The ratio line of a figure where smaller is better (time, memory):
 * "name.ratio baseline/ours x (what)". Above 1 means weft wins.
 */
static inline void bench_ratio(const char *name, double ours, double baseline, const char *what)
{
    double r = ours > 0 ? baseline / ours : 0.0;
    printf(r < 10 ? "%s %.2f x (%s)\n" : "%s %.1f x (%s)\n", name, r, what);
    fflush(stdout);
}

/* A note for the reader: "# text". */
static inline void bench_note(const char *text)
{
    printf("# %s\n", text);
    fflush(stdout);
}

/* Aborts the benchmark loudly: a wrong result makes every figure meaningless. */
#define BENCH_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "bench: FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/*
 * Runs fn(arg) once as a warm-up, then reps times, and returns the smallest
 * result (fn returns a cost such as ns per operation). The minimum is the
 * figure least disturbed by the other tenants of a virtual machine.
 */
/* Minor page faults (first touches of fresh pages, the costliest thing a
 * virtual machine does for a thread library) taken by the whole process
 * during the run bench_best last returned. */
static long bench_best_faults;

static inline long bench_minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static inline double bench_best(double (*fn)(void *), void *arg, int reps)
{
    (void)fn(arg);
    double best = 0;
    for (int i = 0; i < reps; i++) {
        long f0 = bench_minflt();
        double v = fn(arg);
        long faults = bench_minflt() - f0;
        if (i == 0 || v < best) {
            best = v;
            bench_best_faults = faults;
        }
    }
    return best;
}

/* A note saying how much of the figure just measured with bench_best was
 * page faults: per item (thread, operation) of the n in the best run. */
static inline void bench_faults_note(const char *name, long n)
{
    printf("# %s: %ld page faults in the best run, %.3f per thread\n", name,
           bench_best_faults, n > 0 ? (double)bench_best_faults / (double)n : 0.0);
}

struct bench_job {
    double (*fn)(void *);
    void *arg;
    int reps;
    double best;
};

static inline void *bench_job_main(void *p)
{
    struct bench_job *j = p;
    j->best = bench_best(j->fn, j->arg, j->reps);
    return NULL;
}

/*
 * bench_best run inside a weft thread (spawned and joined from the caller,
 * usually main), so the measured code runs as a user thread on a worker,
 * the way a weft program runs.
 */
static inline double bench_best_in_weft(double (*fn)(void *), void *arg, int reps)
{
    struct bench_job j = {fn, arg, reps, 0};
    weft_t t;
    int rc = weft_spawn(&t, bench_job_main, &j, NULL);
    BENCH_CHECK(rc == 0, "weft_spawn: %d", rc);
    rc = weft_join(t, NULL, WEFT_FOREVER);
    BENCH_CHECK(rc == 0, "weft_join: %d", rc);
    return j.best;
}

#endif /* WEFT_BENCH_H */
