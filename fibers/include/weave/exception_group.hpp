#pragma once
// weave::ExceptionGroup: several exceptions reported as one (Python's ExceptionGroup).

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace weave {

/// Several exceptions that happened together, thrown as one: what a task group throws when
/// one or more of its children (or its body) failed.
///
/// The exceptions are kept in the order they happened. weave::Cancelled is never one of them:
/// a cancelled child is not an error. A group can hold another group (a nested task group that
/// failed inside a child).
///
/// @par Example
/// @code
/// try {
///   weave::task_group([&](weave::TaskGroup& g) {
///     g.spawn(fetch, "a");
///     g.spawn(fetch, "b");
///   });
/// } catch (const weave::ExceptionGroup& eg) {
///   for (const std::exception_ptr& e : eg.exceptions()) log(e);
///   if (const auto* io = eg.find<std::system_error>()) retry_later(io->code());
/// }
/// @endcode
///
/// @par Thread safety
/// Immutable once built; copies share the same list and may be used from any thread.
class ExceptionGroup : public std::exception {
 public:
  /// Groups `exceptions` (which should not be empty). `context` starts the message, e.g.
  /// "unhandled errors in a task group".
  explicit ExceptionGroup(std::vector<std::exception_ptr> exceptions,
                          std::string context = "unhandled errors in a task group");

  /// "weave::ExceptionGroup: <context> (N): [1] <what of the first>; [2] ...", listing at most
  /// the first ten.
  const char* what() const noexcept override;

  /// The exceptions, in the order they happened.
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return data_->exceptions; }
  std::size_t size() const noexcept { return data_->exceptions.size(); }

  /// The first exception of type E (or derived from it) in the group, not looking into nested
  /// groups; nullptr if there is none. The pointer stays valid as long as this group does.
  template <class E>
  const E* find() const noexcept {
    for (const std::exception_ptr& p : data_->exceptions)
      if (const E* e = as<E>(p)) return e;
    return nullptr;
  }

  /// How many exceptions of type E (or derived from it) the group holds, not looking into
  /// nested groups.
  template <class E>
  std::size_t count() const noexcept {
    std::size_t n = 0;
    for (const std::exception_ptr& p : data_->exceptions)
      if (as<E>(p)) ++n;
    return n;
  }

 private:
  // The stored exception as an E, or nullptr. Rethrowing is the only portable way to look at
  // the object an exception_ptr holds; libstdc++ and libc++ rethrow the stored object itself, so
  // the pointer refers into the exception_ptr's object, which this group keeps alive.
  template <class E>
  static const E* as(const std::exception_ptr& p) noexcept {
    try {
      std::rethrow_exception(p);
    } catch (const E& e) {
      return &e;
    } catch (...) {  // a stored exception of another type, not one in flight: nothing to rethrow
      return nullptr;
    }
  }

  struct Data {
    std::vector<std::exception_ptr> exceptions;
    std::string what;
  };
  // Shared so that copying the exception object (which the runtime may do) cannot throw.
  std::shared_ptr<const Data> data_;
};

}  // namespace weave
