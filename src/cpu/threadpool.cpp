#include "cpu/threadpool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

namespace ait {

namespace {
thread_local bool t_inside_pool = false;
std::atomic<int64_t> g_grain_override{0};
}  // namespace

ThreadPool::ThreadPool(int threads) : nthreads_(std::max(1, threads)) {
  for (int i = 1; i < nthreads_; ++i) workers_.emplace_back(&ThreadPool::worker, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int id) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int, int)>* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    t_inside_pool = true;
    (*job)(id, nthreads_);
    t_inside_pool = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (nthreads_ == 1 || t_inside_pool) {
    // Serial fallback keeps the same task split, so results match the parallel run exactly.
    for (int t = 0; t < nthreads_; ++t) fn(t, nthreads_);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    pending_ = nthreads_ - 1;
    ++generation_;
  }
  cv_start_.notify_all();
  t_inside_pool = true;
  fn(0, nthreads_);
  t_inside_pool = false;
  std::unique_lock<std::mutex> lock(mu_);
  cv_done_.wait(lock, [&] { return pending_ == 0; });
}

namespace {
int default_threads() {
  if (const char* env = std::getenv("AIT_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}
std::unique_ptr<ThreadPool>& pool_slot() {
  static std::unique_ptr<ThreadPool> p(new ThreadPool(default_threads()));
  return p;
}
}  // namespace

ThreadPool& pool() { return *pool_slot(); }
void set_num_threads(int threads) { pool_slot().reset(new ThreadPool(threads)); }
int num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int tasks = num_threads();
  if (int64_t forced = g_grain_override.load(std::memory_order_relaxed)) grain = forced;
  if (grain < 1) grain = 1;
  int64_t useful = std::max<int64_t>(1, n / grain);
  if (tasks == 1 || useful == 1) {
    fn(0, n);
    return;
  }
  int active = static_cast<int>(std::min<int64_t>(tasks, useful));
  pool().run([&](int t, int) {
    if (t >= active) return;
    int64_t begin = n * t / active, end = n * (t + 1) / active;
    if (begin < end) fn(begin, end);
  });
}

void set_grain_override(int64_t grain) { g_grain_override.store(std::max<int64_t>(0, grain)); }

}  // namespace ait
