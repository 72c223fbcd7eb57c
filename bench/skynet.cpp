// skynet: a million fibers in a 10-ary tree, each leaf returning its number and each inner
// fiber summing its ten children; the root's sum must be 0 + 1 + ... + 999,999 = 499999500000.
// One thread. Every node of the tree is a fiber: 1,000,000 leaves plus 111,111 inner fibers.
//
// Usage: skynet [--impl weave|boost_fiber] [--mode eager|fifo] [--stack-size BYTES]
//
//   --impl weave        (default) weave fibers, weave::Task::get to collect the results.
//   --impl boost_fiber  Boost.Fiber fibers, for comparison; each child writes its result into
//                       its parent's frame and the parent joins it.
//   --mode eager        (default) weave: SpawnOptions{.eager = true}, a child runs at once until
//                       it finishes, so only one path of the tree (7 fibers) is alive at a time.
//                       Boost.Fiber: launch::dispatch.
//   --mode fifo         weave: the default spawn, children are queued behind what is ready, so
//                       the whole tree is alive at once (much slower, far more memory).
//                       Boost.Fiber: launch::post (its default); every fiber has its stack from
//                       creation, so give it a small --stack-size.
//   --stack-size BYTES  the fibers' stack size (default: weave's loop default, 256 KiB; Boost's
//                       fixedsize_stack default).
//
// Prints one line: implementation, mode, stack size, the sum, the wall time of the whole run
// in ms, the process's CPU time (user + system) in ms and its peak RSS (getrusage ru_maxrss).
// Exits with 1 if the sum is wrong.

#include <sys/resource.h>

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/fixedsize_stack.hpp>
#include <boost/fiber/operations.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "weave/weave.hpp"

namespace {

constexpr std::uint64_t kLeaves = 1'000'000;
constexpr int kDiv = 10;
constexpr std::uint64_t kExpected = kLeaves * (kLeaves - 1) / 2;  // 499999500000

struct Config {
  bool boost_fiber = false;
  bool eager = true;
  std::size_t stack_size = 0;  // 0: the implementation's default
};

// ---- weave -----------------------------------------------------------------------------------

std::uint64_t skynet_weave(std::uint64_t num, std::uint64_t size, const Config* cfg) {
  if (size == 1) return num;
  const std::uint64_t child_size = size / kDiv;
  weave::SpawnOptions options;  // (designated initialisers make GCC 12 warn about `name`)
  options.eager = cfg->eager;
  weave::Task<std::uint64_t> children[kDiv];
  for (int i = 0; i < kDiv; ++i)
    children[i] = weave::spawn(options, &skynet_weave,
                               num + static_cast<std::uint64_t>(i) * child_size, child_size, cfg);
  std::uint64_t sum = 0;
  for (auto& child : children) sum += child.get();
  return sum;
}

std::uint64_t run_weave(const Config& cfg) {
  weave::Loop::Options options;
  if (cfg.stack_size) options.stack_size = cfg.stack_size;
  return weave::run(options, [&cfg] { return skynet_weave(0, kLeaves, &cfg); });
}

// ---- Boost.Fiber -----------------------------------------------------------------------------

void skynet_boost(std::uint64_t* out, std::uint64_t num, std::uint64_t size, const Config* cfg) {
  if (size == 1) {
    *out = num;
    return;
  }
  const std::uint64_t child_size = size / kDiv;
  const auto policy = cfg->eager ? boost::fibers::launch::dispatch : boost::fibers::launch::post;
  std::uint64_t results[kDiv];
  boost::fibers::fiber children[kDiv];
  for (int i = 0; i < kDiv; ++i) {
    const std::uint64_t child_num = num + static_cast<std::uint64_t>(i) * child_size;
    std::uint64_t* slot = &results[i];
    if (cfg->stack_size)
      children[i] = boost::fibers::fiber(policy, std::allocator_arg,
                                         boost::fibers::fixedsize_stack(cfg->stack_size),
                                         &skynet_boost, slot, child_num, child_size, cfg);
    else
      children[i] = boost::fibers::fiber(policy, &skynet_boost, slot, child_num, child_size, cfg);
  }
  std::uint64_t sum = 0;
  for (int i = 0; i < kDiv; ++i) {
    children[i].join();
    sum += results[i];
  }
  *out = sum;
}

std::uint64_t run_boost(const Config& cfg) {
  // The thread's main context is a Boost.Fiber context: the root runs on it.
  std::uint64_t sum = 0;
  skynet_boost(&sum, 0, kLeaves, &cfg);
  return sum;
}

// ---- main ------------------------------------------------------------------------------------

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "skynet: %s\nusage: skynet [--impl weave|boost_fiber] [--mode eager|fifo] "
               "[--stack-size BYTES]\n",
               why);
  std::exit(2);
}

Config parse(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (arg == "--impl") {
      auto v = value();
      if (v == "weave")
        cfg.boost_fiber = false;
      else if (v == "boost_fiber")
        cfg.boost_fiber = true;
      else
        usage("--impl must be weave or boost_fiber");
    } else if (arg == "--mode") {
      auto v = value();
      if (v == "eager")
        cfg.eager = true;
      else if (v == "fifo")
        cfg.eager = false;
      else
        usage("--mode must be eager or fifo");
    } else if (arg == "--stack-size") {
      std::string v(value());
      char* end = nullptr;
      unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0) usage("--stack-size takes a positive byte count");
      cfg.stack_size = static_cast<std::size_t>(n);
    } else if (arg == "--help" || arg == "-h") {
      usage("help");
    } else {
      usage("unknown argument");
    }
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t sum = cfg.boost_fiber ? run_boost(cfg) : run_weave(cfg);
  const auto t1 = std::chrono::steady_clock::now();
  const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();

  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
  // CPU time (user + system) of the whole process, set-up included: on a machine shared with
  // other processes it stays close to what the run costs when the wall time does not.
  auto ms_of = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  const double cpu_ms = ms_of(ru.ru_utime) + ms_of(ru.ru_stime);

  const bool ok = sum == kExpected;
  std::string stack = cfg.stack_size ? std::to_string(cfg.stack_size) : "default";
  std::printf(
      "skynet impl=%s mode=%s stack=%s fibers=%llu sum=%llu %s time=%.1f ms cpu=%.1f ms "
      "peak_rss=%.1f MB\n",
      cfg.boost_fiber ? "boost_fiber" : "weave", cfg.eager ? "eager" : "fifo", stack.c_str(),
      static_cast<unsigned long long>(kLeaves + kLeaves / 9), static_cast<unsigned long long>(sum),
      ok ? "ok" : "WRONG(expected 499999500000)", ms, cpu_ms, rss_mb);
  return ok ? 0 : 1;
}
