#pragma once
// A small legacy "library" with a callback API, in the style of the asyncio talk's callback-hell
// slide (docs/migration.md): three calls, each taking a request and a callback.
//
//   api_call1 completes on the library's own worker thread (a foreign thread, as many client
//             libraries do), after some work;
//   api_call2 completes on the loop, from a timer (call_later);
//   api_call3 completes on the loop, from a timer, error first: (std::error_code, Response).
//
// Nothing here knows about fibers. The library is used unchanged by both versions of the
// three-stage code.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "weave/loop.hpp"

namespace legacy {

using Callback = std::function<void(std::string)>;
using ErrorCallback = std::function<void(std::error_code, std::string)>;

// One worker thread with a queue: the library's "thread pool".
class Worker {
 public:
  Worker() : thread_([this] { work(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> l(m_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> l(m_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [&] { return done_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool done_ = false;
  std::thread thread_;
};

class Library {
 public:
  /// How long api_call2 and api_call3 take (the timeout demo makes api_call3 slow).
  Library(weave::Loop& loop, std::chrono::milliseconds stage2_delay,
          std::chrono::milliseconds stage3_delay)
      : loop_(loop), stage2_delay_(stage2_delay), stage3_delay_(stage3_delay) {}

  /// Completes on the library's worker thread.
  void api_call1(std::string request, Callback done) {
    worker_.submit([request = std::move(request), done = std::move(done)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // "network"
      done("response1(" + request + ")");
    });
  }
  /// Completes on the loop, stage2_delay later. Must be called on the loop's thread.
  void api_call2(std::string request, Callback done) {
    loop_.call_later(stage2_delay_, [request = std::move(request), done = std::move(done)] {
      done("response2(" + request + ")");
    });
  }
  /// Completes on the loop after stage3_delay, error first; an empty request is an error.
  void api_call3(std::string request, ErrorCallback done) {
    loop_.call_later(stage3_delay_, [request = std::move(request), done = std::move(done)] {
      if (request.empty())
        done(std::make_error_code(std::errc::invalid_argument), "");
      else
        done({}, "response3(" + request + ")");
    });
  }

 private:
  weave::Loop& loop_;
  std::chrono::milliseconds stage2_delay_;
  std::chrono::milliseconds stage3_delay_;
  Worker worker_;
};

// The application's own steps between the calls.
inline std::string step1(const std::string& response1) { return "request2 from " + response1; }
inline std::string step2(const std::string& response2) { return "request3 from " + response2; }

}  // namespace legacy
