#include "ckernels.h"
int ck_cpu_features(void) { return 0; }
