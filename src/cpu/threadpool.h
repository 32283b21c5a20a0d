// A small fixed thread pool shared by the GEMM and the large elementwise / row-wise kernels.
// Work is split statically (chunk i always goes to the same worker), so results never depend
// on scheduling. The kernels are written so that they do not depend on the split either: any
// thread count gives bit-identical output (docs/spec.md §10).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ait {

class ThreadPool {
public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return nthreads_; }
  // Calls fn(task, ntasks) for task = 0..ntasks-1 with ntasks = size(); returns when all are done.
  // The caller's thread runs task 0. Nested calls run serially on the calling thread.
  void run(const std::function<void(int task, int ntasks)>& fn);

private:
  void worker(int id);
  int nthreads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int, int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// The process-wide pool: AIT_THREADS workers (default: all cores).
ThreadPool& pool();
// Replace the process-wide pool with one of `threads` workers (at least 1). Tests use it to run
// the same computation at several thread counts; call it only while no kernel is running.
void set_num_threads(int threads);
int num_threads();

// Static split of [0, n) into contiguous ranges, one per pool task; ranges shorter than `grain`
// items are merged so that tiny loops run on one thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// For tests: while `grain` > 0, parallel_for uses it in place of every caller's grain, so that
// even small inputs are spread over all threads (1: as finely as possible). 0 restores the
// callers' grains. Results must not change either way (docs/spec.md §10).
void set_grain_override(int64_t grain);

}  // namespace ait
