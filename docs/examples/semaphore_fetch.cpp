// semaphore_fetch: twenty "fetches" start at once, but a semaphore lets at most five of them
// run at a time. The program measures how many ever ran together, and how long it all took.
//
// A port of "HTTP requests (async + semaphore)" from the asyncio tutorials ("Asynchronous
// programming in Python", LINCS workshop; the Cisco "Deep Python" talk makes the same point:
// firing every request at once overwhelms the server, so throttle them):
//
//   async def fetch_quote_async(semaphore):
//       async with semaphore:                        # at most 5 inside at any time
//           async with httpx.AsyncClient() as client:
//               res = await client.get("https://.../api/random")
//           return res.json()...
//
//   semaphore = asyncio.Semaphore(5)
//   futures = [asyncio.create_task(fetch_quote_async(semaphore)) for _ in range(10)]
//   for future in asyncio.as_completed(futures):
//       print(await future)
//
// Here the network round trip is a sleep of a seeded random length, so the example needs no
// network and always does the same thing.
//
// What it teaches:
//   - weave::Semaphore is asyncio.Semaphore: acquire() takes a permit, suspending the fiber
//     while there is none; release() gives it back, to the longest waiter first;
//   - `async with semaphore:` becomes an RAII guard (PermitGuard below): the permit goes back
//     however the fetch ends, by return, exception or cancellation;
//   - every task can be spawned at once; the semaphore, not the spawning code, sets the pace;
//   - with 5 at a time, 20 fetches take about a fifth of their summed time.
//
// Usage: semaphore_fetch [--virtual-time]
//   --virtual-time  run on a weave::ManualClock: the loop jumps from timer to timer instead of
//                   waiting, so the program ends at once with the same output every time (this
//                   is how the test runs it).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string_view>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

constexpr int kFetches = 20;
constexpr int kLimit = 5;

double seconds_since(weave::TimePoint start) {
  return std::chrono::duration<double>(weave::Loop::current().time() - start).count();
}
double seconds(milliseconds d) { return std::chrono::duration<double>(d).count(); }

// `async with semaphore:` — takes a permit on construction and gives it back on destruction.
// (weave::Lock meets the standard Lockable requirements and works with std::lock_guard; a
// semaphore's acquire()/release() are named after std::counting_semaphore's, so it gets its
// own few lines of guard.)
class PermitGuard {
 public:
  explicit PermitGuard(weave::Semaphore& s) : s_(s) { s_.acquire(); }
  PermitGuard(const PermitGuard&) = delete;
  PermitGuard& operator=(const PermitGuard&) = delete;
  ~PermitGuard() { s_.release(); }

 private:
  weave::Semaphore& s_;
};

// How many fetches are inside the semaphore now, and the most there ever were.
struct Gauge {
  int now = 0;
  int peak = 0;
};

// Counts one fetch in for as long as it lives. Constructed after the PermitGuard, so it is
// destroyed before it: the count never includes a fetch that no longer holds its permit.
class InFlight {
 public:
  explicit InFlight(Gauge& g) : g_(g) { g_.peak = std::max(g_.peak, ++g_.now); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() { --g_.now; }

 private:
  Gauge& g_;
};

// One fetch: wait for a permit, then "download" (sleep) and return the "quote".
int fetch(int id, milliseconds latency, weave::Semaphore& limit, Gauge& gauge,
          weave::TimePoint start) {
  PermitGuard permit(limit);  // suspends here while 5 fetches are running
  InFlight counted(gauge);
  std::printf("[%.3f s] fetch %2d starts  (%d in flight)\n", seconds_since(start), id, gauge.now);
  weave::this_fiber::sleep_for(latency);  // the network round trip
  std::printf("[%.3f s] fetch %2d done after %.3f s\n", seconds_since(start), id, seconds(latency));
  return id;  // the "quote": its number will do
}

}  // namespace

int main(int argc, char** argv) {
  const bool virtual_time = argc > 1 && std::string_view(argv[1]) == "--virtual-time";

  // Seeded, and taken from std::mt19937 directly (whose sequence the standard fixes), so the
  // latencies are the same on every run and with every standard library.
  std::mt19937 random(7);
  std::vector<milliseconds> latency;
  milliseconds total{0};
  for (int i = 0; i < kFetches; ++i) {
    latency.push_back(milliseconds(100 + random() % 301));  // 0.100 s to 0.400 s
    total += latency.back();
  }

  weave::ManualClock manual_clock;  // must outlive the loop that reads it
  weave::Loop::Options options;
  if (virtual_time) options.clock = &manual_clock;

  weave::run(options, [&] {
    const weave::TimePoint start = weave::Loop::current().time();
    weave::Semaphore limit(kLimit);
    Gauge gauge;

    // All twenty start at once; the first five get a permit, the others wait in line inside
    // acquire(), in the order they were spawned.
    std::vector<weave::Task<int>> fetches;
    for (int i = 0; i < kFetches; ++i)
      fetches.push_back(
          weave::spawn(fetch, i + 1, latency[i], std::ref(limit), std::ref(gauge), start));

    std::vector<int> quotes;
    for (weave::Task<int>& f : fetches) quotes.push_back(f.get());

    std::printf("====\n");
    std::printf("%d fetches, at most %d at a time: the most in flight together was %d\n", kFetches,
                kLimit, gauge.peak);
    std::printf("elapsed %.3f s; the fetches add up to %.3f s (%.3f s / %d = %.3f s)\n",
                seconds_since(start), seconds(total), seconds(total), kLimit,
                seconds(total) / kLimit);
    std::printf("quotes received: %zu\n", quotes.size());
  });
  return 0;
}
