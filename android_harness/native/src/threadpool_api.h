// The two entry points of ExecuTorch's thread pool the runner needs. The executorch 1.5.1 wheel ships
// libexecutorch_threadpool.so but not extension/threadpool/threadpool.h, so they are declared here
// with the library's signatures; a source install (the Android build) has the real header.
#pragma once

#include <cstddef>
#include <cstdint>

#if __has_include(<executorch/extension/threadpool/threadpool.h>)
#include <executorch/extension/threadpool/threadpool.h>
#else
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
#endif
