/* classify: prints the predicted class and the logits of PNG / PGM / PPM images with a trained
 * AiT checkpoint, through the C library (include/ait.h).
 *
 *   classify [--device cpu|vulkan|vulkan:N|auto] CHECKPOINT IMAGE...
 *
 * All images go through the model as one batch. Output, one line per image:
 *   FILE CLASS logits L0 L1 ...
 * with each logit printed as %.9g, which gives back the float exactly. Models that take a
 * question per image get all-zero questions. */
#include <ait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
  fprintf(stderr, "usage: classify [--device cpu|vulkan|vulkan:N|auto] CHECKPOINT IMAGE...\n");
  return 2;
}

static int report(const char* what) {
  fprintf(stderr, "classify: %s failed: %s\n", what, ait_last_error());
  return 1;
}

static void print_results(char** files, int n, const int* classes, const float* logits, int num_classes) {
  int i, k;
  for (i = 0; i < n; ++i) {
    printf("%s %d logits", files[i], classes[i]);
    for (k = 0; k < num_classes; ++k) printf(" %.9g", logits[(size_t)i * (size_t)num_classes + (size_t)k]);
    printf("\n");
  }
}

/* Reads every image, runs the batch and prints it; returns the exit status. */
static int classify(ait_model* model, char** files, int n) {
  ait_config cfg;
  size_t image_size, q_size, i;
  unsigned char* images;
  float *questions = NULL, *logits;
  int* classes;
  int status = 0;
  if (ait_get_config(model, &cfg) != AIT_OK) return report("ait_get_config");
  image_size = (size_t)cfg.channels * (size_t)cfg.height * (size_t)cfg.width;
  q_size = (size_t)n * (size_t)cfg.question_dim;
  images = malloc((size_t)n * image_size);
  logits = malloc((size_t)n * (size_t)cfg.num_classes * sizeof(float));
  classes = malloc((size_t)n * sizeof(int));
  if (q_size) questions = calloc(q_size, sizeof(float));
  if (!images || !logits || !classes || (q_size && !questions)) {
    fprintf(stderr, "classify: out of memory\n");
    status = 1;
  }
  for (i = 0; status == 0 && i < (size_t)n; ++i)
    if (ait_read_image(files[i], cfg.channels, cfg.height, cfg.width, images + i * image_size, image_size) != AIT_OK)
      status = report("ait_read_image");
  if (status == 0 && ait_predict(model, n, images, (size_t)n * image_size, questions, q_size, logits,
                                 (size_t)n * (size_t)cfg.num_classes, classes, (size_t)n) != AIT_OK)
    status = report("ait_predict");
  if (status == 0) print_results(files, n, classes, logits, cfg.num_classes);
  free(images);
  free(questions);
  free(logits);
  free(classes);
  return status;
}

int main(int argc, char** argv) {
  const char* device = "cpu";
  ait_model* model = NULL;
  int first = 1, status;
  if (argc > 2 && strcmp(argv[1], "--device") == 0) {
    device = argv[2];
    first = 3;
  }
  if (argc - first < 2) return usage();
  if (strcmp(ait_version(), AIT_VERSION_STRING) != 0)
    fprintf(stderr, "classify: built with ait.h %s, running libait %s\n", AIT_VERSION_STRING, ait_version());
  if (ait_open(argv[first], device, &model) != AIT_OK) return report("ait_open");
  status = classify(model, argv + first + 1, argc - first - 1);
  ait_close(model);
  return status;
}
