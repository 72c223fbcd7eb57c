#include "weave/exception_group.hpp"

#include <string>
#include <utility>

namespace weave {

namespace {

constexpr std::size_t kListed = 10;

// One line of the summary for a stored exception.
std::string describe(const std::exception_ptr& p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {  // a stored exception of another kind; nothing in flight is swallowed
    return "an exception not derived from std::exception";
  }
}

}  // namespace

ExceptionGroup::ExceptionGroup(std::vector<std::exception_ptr> exceptions, std::string context) {
  auto data = std::make_shared<Data>();
  data->what = "weave::ExceptionGroup: " + context + " (" + std::to_string(exceptions.size()) +
               (exceptions.size() == 1 ? " exception)" : " exceptions)");
  for (std::size_t i = 0; i < exceptions.size() && i < kListed; ++i)
    data->what += (i == 0 ? ": [" : "; [") + std::to_string(i + 1) + "] " + describe(exceptions[i]);
  if (exceptions.size() > kListed)
    data->what += "; and " + std::to_string(exceptions.size() - kListed) + " more";
  data->exceptions = std::move(exceptions);
  data_ = std::move(data);
}

const char* ExceptionGroup::what() const noexcept { return data_->what.c_str(); }

}  // namespace weave
