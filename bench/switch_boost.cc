/*
 * switch_boost - Boost.Context's bare context switch, ns per switch.
 *
 * The reference point for bench/switch.c: main and one fcontext ping-pong
 * with boost::context::detail::jump_fcontext, the assembly switch under
 * Boost.Context and Boost.Fiber. There is no scheduler here, only the switch
 * itself, so weft (whose figure includes its run queue) should come close.
 *
 * bench/run.sh builds this only when <boost/context/detail/fcontext.hpp> is
 * found (Debian: libboost-context-dev), with c++ -O2 ... -lboost_context, and
 * computes the weft/Boost ratio from the two programs' output lines.
 * WEFT_BENCH_SCALE shrinks the run like the C benchmarks. Prints
 * "switch.boost <ns> ns/switch": the best of 5 runs after 1 warm-up.
 */
#include <boost/context/detail/fcontext.hpp>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ctx = boost::context::detail;

static long long now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The other side of the ping-pong: jump back to whoever jumped here, forever.
// Its data word counts the jumps it saw, so the work cannot be optimized away.
static void bouncer(ctx::transfer_t t)
{
    long count = 0;
    for (;;) {
        count++;
        t = ctx::jump_fcontext(t.fctx, reinterpret_cast<void *>(count));
    }
}

static double run(long n)
{
    static char stack[64 * 1024] __attribute__((aligned(64)));
    ctx::fcontext_t co = ctx::make_fcontext(stack + sizeof stack, sizeof stack, bouncer);
    long long t0 = now_ns();
    long last = 0;
    for (long i = 0; i < n; i++) {
        ctx::transfer_t t = ctx::jump_fcontext(co, nullptr);
        co = t.fctx;
        last = reinterpret_cast<long>(t.data);
    }
    long long t1 = now_ns();
    if (last != n) {
        std::fprintf(stderr, "switch_boost: FAILED: %ld round trips seen, %ld made\n", last, n);
        std::exit(1);
    }
    // Each round trip is two switches: main -> bouncer -> main.
    return double(t1 - t0) / double(2 * n);
}

int main()
{
    double scale = 1;
    if (const char *s = std::getenv("WEFT_BENCH_SCALE"))
        if (std::atof(s) > 0)
            scale = std::atof(s);
    long n = long(5000000 * scale);
    if (n < 1000)
        n = 1000;
    run(n); // warm-up
    double best = 0;
    for (int i = 0; i < 5; i++) {
        double v = run(n);
        if (i == 0 || v < best)
            best = v;
    }
    std::printf("switch.boost %.1f ns/switch\n", best);
    return 0;
}
