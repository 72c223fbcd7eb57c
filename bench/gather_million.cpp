// gather_million: create 1,000,000 tasks and gather them, one thread (asyncio's create_task +
// gather over a million coroutines, the figure bench/peers/asyncio_bench.py measures).
// Prints the time and the peak RSS in one line; exits non-zero if a result is wrong.

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "weave/weave.hpp"

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const auto start = std::chrono::steady_clock::now();
  long long sum = weave::run([n] {
    std::vector<weave::Task<long>> tasks;
    tasks.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) tasks.push_back(weave::spawn([i] { return i; }));
    long long s = 0;
    for (long v : weave::gather(tasks)) s += v;
    return s;
  });
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const long long expected = static_cast<long long>(n) * (n - 1) / 2;
  std::printf(
      "gather_million: %ld tasks created and gathered in %.1f ms (%.1f ns per task), "
      "peak RSS %ld MiB, sum %s\n",
      n, ms, ms * 1e6 / static_cast<double>(n), ru.ru_maxrss / 1024,
      sum == expected ? "ok" : "WRONG");
  return sum == expected ? 0 : 1;
}
