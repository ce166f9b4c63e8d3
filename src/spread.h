/*
 * Spreading kept connections evenly over an instance's workers. Every
 * worker can take any new connection, and a kept one stays with the worker
 * that took it, so without a rule the worker that happens to be woken first
 * ends up with all of them while the others idle, and the instance uses one
 * core. Each worker publishes how many connections it holds in a shared
 * table (made by the master before forking) and only takes new ones while
 * it holds no more than the average plus one. The worker holding the
 * fewest always qualifies, so a new connection never waits for want of a
 * taker.
 */
#ifndef BAA_SPREAD_H
#define BAA_SPREAD_H

/* Once, in the master, before forking: one entry per worker slot. */
int spread_init(int slots);

/* The master, when a slot's worker is gone: its connections went with it. */
void spread_clear(int slot);

/* A worker: how many connections it holds, and whether it takes new ones. */
void spread_publish(int slot, int open, int accepting);

/* Whether the worker in slot, holding open connections, should take more. */
int spread_may_accept(int slot, int open);

#endif
