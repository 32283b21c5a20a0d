#include <cstdio>
int main() { std::puts("ait: under construction"); return 0; }
