// The Boost.Context peers of bench_switch.c, in the same binary so that
// both run in one process, interleaved. Each function returns the time of
// one switch (a round trip is two switches) in nanoseconds.
//
// bench_boost_fcontext uses the low-level fcontext API (make_fcontext /
// jump_fcontext), the mechanism behind the 9 ns Boost publishes
// (libs/context/performance/fcontext). bench_boost_fiber uses the public
// boost::context::fiber on the same mechanism.
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>

#include <sys/mman.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace ctx = boost::context;

namespace {

std::int64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

constexpr std::size_t kStackSize = 64 * 1024;

void fcontext_entry(ctx::detail::transfer_t t) {
    for (;;) t = ctx::detail::jump_fcontext(t.fctx, nullptr);
}

}  // namespace

extern "C" double bench_boost_fcontext(long n) {
    void *stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (stack == MAP_FAILED) {
        std::perror("mmap");
        std::exit(1);
    }
    ctx::detail::fcontext_t c =
        ctx::detail::make_fcontext(static_cast<char *>(stack) + kStackSize, kStackSize,
                                   fcontext_entry);
    ctx::detail::transfer_t t = ctx::detail::jump_fcontext(c, nullptr);  // warm up
    std::int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) t = ctx::detail::jump_fcontext(t.fctx, nullptr);
    std::int64_t t1 = now_ns();
    munmap(stack, kStackSize);  // the context stays suspended for good
    return static_cast<double>(t1 - t0) / (2.0 * static_cast<double>(n));
}

extern "C" double bench_boost_fiber(long n) {
    bool stop = false;
    ctx::fiber f{std::allocator_arg, ctx::fixedsize_stack(kStackSize),
                 [&stop](ctx::fiber &&sink) {
                     while (!stop) sink = std::move(sink).resume();
                     return std::move(sink);
                 }};
    f = std::move(f).resume();  // warm up
    std::int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) f = std::move(f).resume();
    std::int64_t t1 = now_ns();
    stop = true;
    f = std::move(f).resume();  // lets the fiber return, so its stack is freed
    return static_cast<double>(t1 - t0) / (2.0 * static_cast<double>(n));
}
