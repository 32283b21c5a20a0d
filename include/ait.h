/* ait.h: the C interface of ait.cpp for applications that classify images with a trained
 * Associative Transformer checkpoint (docs/spec.md §6). C99; no C++ types cross it.
 *
 * Every function that can fail returns an ait_status; on failure ait_last_error() gives a
 * message naming the file, tensor or argument at fault. No C++ exception leaves the library.
 *
 * Threads: a handle may be used from any thread, but by one thread at a time; give each thread
 * its own handle. Forward passes of all handles are serialised by one library-wide lock, since
 * every handle shares the process's CPU thread pool and (for Vulkan) one device context per
 * device. ait_last_error() is per thread. */
#ifndef AIT_H
#define AIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AIT_EXPORT __attribute__((visibility("default")))
#else
#define AIT_EXPORT
#endif

/* The version of this header; ait_version() gives the library's, which may be newer. */
#define AIT_VERSION_MAJOR 0
#define AIT_VERSION_MINOR 1
#define AIT_VERSION_PATCH 0
#define AIT_VERSION_STRING "0.1.0"

typedef enum ait_status {
  AIT_OK = 0,
  AIT_ERROR_ARGUMENT = 1, /* a null pointer, a buffer of the wrong size, a value out of range */
  AIT_ERROR_FILE = 2,     /* a file that cannot be read or is not a valid checkpoint / image */
  AIT_ERROR_VERSION = 3,  /* a checkpoint of a format version newer than this library reads */
  AIT_ERROR_DEVICE = 4,   /* a device that does not exist or cannot be used */
  AIT_ERROR_SHAPE = 5,    /* an image whose geometry differs from the model's */
  AIT_ERROR_MEMORY = 6,   /* out of memory, or a batch too large for the memory there is */
  AIT_ERROR_INTERNAL = 7  /* anything else (a bug: please report the message) */
} ait_status;

/* How evaluation treats the global workspace memory (docs/spec.md §2). */
typedef enum ait_memory_mode {
  AIT_MEMORY_FROZEN = 0, /* the checkpoint's memory is read, never written (the default) */
  AIT_MEMORY_UPDATE = 1, /* each batch writes the memory, and later batches see the change */
  /* Not a mode: makes the type as wide as an int, so that the library can check any value. */
  AIT_MEMORY_MODE_MAX_ENUM = 0x7fffffff
} ait_memory_mode;

/* A checkpoint's configuration, as far as an application feeding it needs it. Checkpoints
 * carry no class names: class k is simply index k in [0, num_classes). */
typedef struct ait_config {
  int channels, height, width; /* images: uint8 [channels, height, width], pixel values 0..255 */
  int question_dim;            /* floats per image's question; 0 when the model takes none */
  int num_classes;             /* logits per image */
  int has_normalisation;       /* 1 when the checkpoint stores its training data's mean / std */
} ait_config;

typedef struct ait_model ait_model; /* opaque */

/* "0.1.0": the library's version (compare with AIT_VERSION_STRING for the header's). */
AIT_EXPORT const char* ait_version(void);

/* The message of this thread's last failed call ("" when none has failed). Valid until the
 * thread's next failing call. */
AIT_EXPORT const char* ait_last_error(void);

/* Opens `checkpoint` on `device`: "cpu", "vulkan", "vulkan:N" or "auto" (a GPU when there is
 * one, else the CPU). On success *model is a new handle; on failure it is set to NULL. */
AIT_EXPORT ait_status ait_open(const char* checkpoint, const char* device, ait_model** model);

/* Frees the handle; NULL is ignored. */
AIT_EXPORT void ait_close(ait_model* model);

/* The checkpoint's configuration (see ait_config). */
AIT_EXPORT ait_status ait_get_config(const ait_model* model, ait_config* config);

/* AIT_MEMORY_UPDATE keeps each batch's memory writes in the handle (never in the file), so the
 * results of later calls depend on earlier ones; AIT_MEMORY_FROZEN (the default) does not. */
AIT_EXPORT ait_status ait_set_memory_mode(ait_model* model, ait_memory_mode mode);

/* Runs `batch` images through the model. Sizes count elements, not bytes, and must be exact:
 *   images     uint8 [batch, C, H, W], images_size = batch*C*H*W
 *   questions  float [batch, q], questions_size = batch*q (NULL and 0 when q = 0)
 *   logits     float [batch, num_classes] out, logits_size = batch*num_classes (or NULL and 0)
 *   classes    int [batch] out, the predicted class (first largest logit), classes_size = batch
 *              (or NULL and 0)
 * At least one of logits and classes must be given. Pixels are scaled to [0, 1] and normalised
 * with the checkpoint's data_mean / data_std; a checkpoint without them gets mean 0, std 1. */
AIT_EXPORT ait_status ait_predict(ait_model* model, int batch, const uint8_t* images, size_t images_size,
                                  const float* questions, size_t questions_size, float* logits, size_t logits_size,
                                  int* classes, size_t classes_size);

/* Decodes a PNG, PGM (P5) or PPM (P6) file into uint8 [channels, height, width], which must be
 * the image's own size (no resizing). A grey image fills every channel when channels is 3;
 * an RGB image cannot become grey. chw_size = channels*height*width. */
AIT_EXPORT ait_status ait_read_image(const char* path, int channels, int height, int width, uint8_t* chw,
                                     size_t chw_size);

#ifdef __cplusplus
}
#endif

#endif /* AIT_H */
