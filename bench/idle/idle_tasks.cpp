// idle_tasks: the memory an idle task costs. Starts N tasks that all block on one shared event,
// measures the resident memory they added (RSS with N tasks blocked minus RSS before, divided
// by N), then sets the event and checks that all N finish. One line of key=value output:
//
//   impl=weave count=1000000 stack_size=262144 created=1000000 rss_per_task_bytes=4190.2
//   pte_per_task_bytes=520.1 create_ms=812.3 create_ns_per_task=812.3 finish_ms=... peak_rss_mb=...
//   ok=1
//
// Usage: idle_tasks [--impl weave|boost_fiber|thread] [--count N] [--stack-size BYTES]
//                   [--max-threads N]
//
//   weave        fibers spawned with weave::spawn (FIFO), each waiting on one weave::Event; the
//                handles are dropped (a dropped Task is not cancelled), as goroutines have none.
//                --stack-size sets Loop::Options::stack_size (0: the default, 256 KiB; below
//                a page: packed stacks, see fibers/include/weave/detail/stack.hpp).
//   boost_fiber  Boost.Fiber fibers (round_robin scheduler, detached) waiting on one
//                boost::fibers::condition_variable; stacks from fixedsize_stack (malloc),
//                64 KiB by default (128 KiB and more would be one mmap each, and a million of
//                those exceed vm.max_map_count).
//   thread       std::thread-like pthreads waiting on one std::condition_variable; stack size
//                from --stack-size (0: the system default, RLIMIT_STACK). Refused above
//                --max-threads (default 20000): threads take pids from the machine-wide
//                pid_max (32768 here), and exhausting them breaks every other process.
//
// "rss" is VmRSS (/proc/self/statm); page tables are not part of it, so they are reported
// separately (pte_per_task_bytes, from VmPTE in /proc/self/status). Exit status: 0 if every
// task was created and finished, 1 if not, 2 on bad arguments, 3 if the count was refused.

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/fiber/all.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "weave/weave.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Resident bytes now (second field of /proc/self/statm, in pages).
long long rss_bytes() {
  long long size = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%lld %lld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * ::sysconf(_SC_PAGESIZE);
}

// A "Key:   123 kB" line of /proc/self/status, in bytes.
long long status_bytes(std::string_view key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() &&
        line[key.size()] == ':')
      return std::atoll(line.c_str() + key.size() + 1) * 1024;
  }
  return 0;
}

// Lines of /proc/self/maps: the mappings the process has (vm.max_map_count caps them).
long mappings() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  long n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

long long peak_rss_bytes() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<long long>(ru.ru_maxrss) * 1024;
}

struct Result {
  long created = 0;
  long finished = 0;
  long long rss_before = 0, rss_blocked = 0;
  long long pte_before = 0, pte_blocked = 0;
  long maps_blocked = 0;
  double create_ms = 0, finish_ms = 0;
  std::string error;
};

void sample_before(Result& r) {
  r.rss_before = rss_bytes();
  r.pte_before = status_bytes("VmPTE");
}

void sample_blocked(Result& r) {
  r.rss_blocked = rss_bytes();
  r.pte_blocked = status_bytes("VmPTE");
  r.maps_blocked = mappings();
}

Result run_weave(long n, std::size_t stack_size) {
  Result r;
  weave::Loop::Options opts;
  if (stack_size) opts.stack_size = stack_size;
  weave::Loop loop(opts);
  // The measuring fiber calls into libc: a normal stack for it whatever --stack-size says.
  auto main = loop.spawn(weave::SpawnOptions{.stack_size = 256 * 1024}, [&] {
    weave::Event go;
    long started = 0, done = 0;
    sample_before(r);
    const auto t0 = Clock::now();
    for (long i = 0; i < n; ++i) {
      weave::spawn([&] {
        ++started;
        go.wait();
        ++done;
      });
    }
    // FIFO: every new fiber runs (and blocks) before this one is resumed.
    while (started < n) weave::this_fiber::yield();
    r.create_ms = ms_since(t0);
    r.created = started;
    sample_blocked(r);
    const auto t1 = Clock::now();
    go.set();
    while (done < n) weave::this_fiber::yield();
    r.finish_ms = ms_since(t1);
    r.finished = done;
  });
  loop.run_until_complete(main);
  return r;
}

Result run_boost_fiber(long n, std::size_t stack_size) {
  Result r;
  if (!stack_size) stack_size = 64 * 1024;
  boost::fibers::mutex m;
  boost::fibers::condition_variable cv;
  bool go = false;
  long started = 0, done = 0;
  sample_before(r);
  const auto t0 = Clock::now();
  try {
    for (long i = 0; i < n; ++i) {
      boost::fibers::fiber(std::allocator_arg, boost::fibers::fixedsize_stack(stack_size), [&] {
        ++started;
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return go; });
        ++done;
      }).detach();
      ++r.created;
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  while (started < r.created) boost::this_fiber::yield();
  r.create_ms = ms_since(t0);
  sample_blocked(r);
  const auto t1 = Clock::now();
  {
    std::unique_lock lk(m);
    go = true;
  }
  cv.notify_all();
  while (done < r.created) boost::this_fiber::yield();
  r.finish_ms = ms_since(t1);
  r.finished = done;
  return r;
}

struct ThreadShared {
  std::mutex m;
  std::condition_variable cv;
  std::condition_variable started_cv;
  bool go = false;
  long started = 0;
  long done = 0;
};

void* thread_body(void* arg) {
  auto* s = static_cast<ThreadShared*>(arg);
  std::unique_lock lk(s->m);
  ++s->started;
  s->started_cv.notify_one();
  s->cv.wait(lk, [&] { return s->go; });
  ++s->done;
  return nullptr;
}

Result run_threads(long n, std::size_t stack_size) {
  Result r;
  ThreadShared s;
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  if (stack_size) ::pthread_attr_setstacksize(&attr, stack_size);
  std::vector<pthread_t> threads;
  threads.reserve(static_cast<std::size_t>(n));
  sample_before(r);
  const auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    pthread_t t;
    if (int e = ::pthread_create(&t, &attr, thread_body, &s); e != 0) {
      r.error = std::string("pthread_create: ") + std::strerror(e);
      break;
    }
    threads.push_back(t);
  }
  ::pthread_attr_destroy(&attr);
  r.created = static_cast<long>(threads.size());
  {
    std::unique_lock lk(s.m);
    s.started_cv.wait(lk, [&] { return s.started == r.created; });
  }
  r.create_ms = ms_since(t0);
  sample_blocked(r);
  const auto t1 = Clock::now();
  {
    std::unique_lock lk(s.m);
    s.go = true;
  }
  s.cv.notify_all();
  for (pthread_t t : threads) ::pthread_join(t, nullptr);
  r.finish_ms = ms_since(t1);
  r.finished = s.done;
  return r;
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "idle_tasks: %s\nusage: idle_tasks [--impl weave|boost_fiber|thread] [--count N] "
               "[--stack-size BYTES] [--max-threads N]\n",
               msg);
  std::exit(2);
}

long parse_long(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0) usage((std::string("bad ") + what).c_str());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string impl = "weave";
  long count = 100000;
  long stack_size = 0;
  long max_threads = 20000;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((std::string(a) + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--impl")
      impl = value();
    else if (a == "--count")
      count = parse_long(value(), "--count");
    else if (a == "--stack-size")
      stack_size = parse_long(value(), "--stack-size");
    else if (a == "--max-threads")
      max_threads = parse_long(value(), "--max-threads");
    else
      usage((std::string("unknown argument ") + std::string(a)).c_str());
  }
  if (count < 1) usage("--count must be at least 1");

  const auto size = static_cast<std::size_t>(stack_size);
  Result r;
  if (impl == "weave") {
    r = run_weave(count, size);
  } else if (impl == "boost_fiber") {
    r = run_boost_fiber(count, size);
  } else if (impl == "thread") {
    if (count > max_threads) {
      std::printf(
          "impl=thread count=%ld skipped=1 reason=\"more than --max-threads=%ld: threads take "
          "pids from the machine-wide pid_max\"\n",
          count, max_threads);
      return 3;
    }
    r = run_threads(count, size);
  } else {
    usage("--impl must be weave, boost_fiber or thread");
  }

  const bool ok = r.created == count && r.finished == count;
  const double per =
      r.created ? static_cast<double>(r.rss_blocked - r.rss_before) / static_cast<double>(r.created)
                : 0;
  const double pte =
      r.created ? static_cast<double>(r.pte_blocked - r.pte_before) / static_cast<double>(r.created)
                : 0;
  std::printf(
      "impl=%s count=%ld stack_size=%ld created=%ld finished=%ld rss_per_task_bytes=%.1f "
      "pte_per_task_bytes=%.1f create_ms=%.1f create_ns_per_task=%.1f finish_ms=%.1f "
      "rss_before_mb=%.1f rss_blocked_mb=%.1f peak_rss_mb=%.1f mappings=%ld ok=%d%s%s%s\n",
      impl.c_str(), count, stack_size, r.created, r.finished, per, pte, r.create_ms,
      r.created ? r.create_ms * 1e6 / static_cast<double>(r.created) : 0.0, r.finish_ms,
      static_cast<double>(r.rss_before) / 1048576.0, static_cast<double>(r.rss_blocked) / 1048576.0,
      static_cast<double>(peak_rss_bytes()) / 1048576.0, r.maps_blocked, ok ? 1 : 0,
      r.error.empty() ? "" : " error=\"", r.error.c_str(), r.error.empty() ? "" : "\"");
  return ok ? 0 : 1;
}
