#include <math.h>

#include "train/outliers.h"

double outlier_z(const outlier_window *w, double x) {
    if (w->n < OUTLIER_MIN) return 0.0;
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < w->n; i++) mean += w->v[i];
    mean /= w->n;
    for (int i = 0; i < w->n; i++) var += (w->v[i] - mean) * (w->v[i] - mean);
    double sd = sqrt(var / w->n);
    return sd > 0.0 ? ((double)(float)x - mean) / sd : 0.0;
}

void outlier_push(outlier_window *w, double x) {
    w->v[w->next] = (float)x;
    w->next = (w->next + 1) % OUTLIER_WINDOW;
    if (w->n < OUTLIER_WINDOW) w->n++;
}
