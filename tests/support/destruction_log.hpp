#pragma once
// Which thread destroyed an outcome that crossed threads (a value or exception made on a
// producer thread for a fiber on the loop): the tests that check it is the loop's.

#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace weave_test {

/// The threads that destroyed the logged objects, in order.
struct DestructionLog {
  void add() {
    std::lock_guard lock(m);
    threads.push_back(std::this_thread::get_id());
  }
  /// The thread of the last destruction (a default id if there was none).
  std::thread::id last() {
    std::lock_guard lock(m);
    return threads.empty() ? std::thread::id() : threads.back();
  }

  std::mutex m;
  std::vector<std::thread::id> threads;
};

/// A value that logs its destruction; a moved-from one does not (it died where it was moved).
struct LoggedValue {
  explicit LoggedValue(DestructionLog* l) : log(l) {}
  LoggedValue(LoggedValue&& o) noexcept : log(std::exchange(o.log, nullptr)) {}
  ~LoggedValue() {
    if (log) log->add();
  }
  DestructionLog* log;
};

/// An exception that logs the destruction of its copies only: make_exception_ptr stores a
/// copy, and the original dies on the producer's thread, as it should.
struct LoggedError : std::runtime_error {
  explicit LoggedError(DestructionLog* l) : std::runtime_error("logged"), log(l) {}
  LoggedError(const LoggedError& o) : std::runtime_error(o), log(o.log), copy(true) {}
  ~LoggedError() override {
    if (copy) log->add();
  }
  DestructionLog* log;
  bool copy = false;
};

}  // namespace weave_test
