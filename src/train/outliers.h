/* Skipping an update whose loss or gradient norm is an outlier (`--skip-loss-z Z`,
 * `--skip-norm-z Z`), as llm.c does: the z-score of the value against a window of the recent
 * updates' values. The window holds float values (the state file keeps them, so a resumed run
 * decides as an uninterrupted one would). */
#ifndef GPT2C_OUTLIERS_H
#define GPT2C_OUTLIERS_H

/* The updates remembered, and how many there must be before a z-score is given (fewer: no
 * verdict; the first steps' fast fall of the loss is no outlier). */
#define OUTLIER_WINDOW 128
#define OUTLIER_MIN 8

typedef struct outlier_window {
    float v[OUTLIER_WINDOW];
    int n; /* values held, at most OUTLIER_WINDOW; the oldest is overwritten next */
    int next;
} outlier_window;

/* (x - mean) / standard deviation of the window; 0 when it holds fewer than OUTLIER_MIN values
 * or they are all equal. */
double outlier_z(const outlier_window *w, double x);
void outlier_push(outlier_window *w, double x);

#endif
