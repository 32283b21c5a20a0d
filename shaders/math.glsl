// Math helpers GLSL lacks: erfc / erf and the exact GELU with its derivative.
#ifndef AIT_MATH_GLSL
#define AIT_MATH_GLSL

// Complementary error function. Chebyshev-fitted form erfc(z) ~= t * ait_exp(-z^2 + P(t)),
// t = 1 / (1 + z/2), with a fractional error below 1.2e-7 for every z >= 0 (the classic fit
// from Numerical Recipes, "erfcc"); negative arguments use erfc(-z) = 2 - erfc(z). Because it
// returns erfc directly, the left tail keeps full relative precision (no 1 - erf cancellation).
float ait_erfc(float x) {
  float z = abs(x);
  float t = 1.0 / (1.0 + 0.5 * z);
  float p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
            t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
            t * (-0.82215223 + t * 0.17087277))))))));
  float r = t * ait_exp(-z * z + p);
  return x >= 0.0 ? r : 2.0 - r;
}

// Phi(x) = P(N(0,1) <= x) = erfc(-x / sqrt(2)) / 2
float ait_phi(float x) { return 0.5 * ait_erfc(-x * 0.70710678118654752); }

// gelu(x) = x * Phi(x)
float gelu(float x) { return x * ait_phi(x); }

// gelu'(x) = Phi(x) + x * phi(x), phi the standard normal density
float gelu_grad(float x) { return ait_phi(x) + x * 0.39894228040143268 * ait_exp(-0.5 * x * x); }

#endif
