/*
 * A short label for a device, from its User-Agent, for the sessions list
 * and the audit trail: "Firefox on Linux", "curl". The words come from a
 * fixed vocabulary and never from the User-Agent itself, so whatever a
 * client sends, a label cannot carry markup, quotes or a forged log field.
 */
#ifndef BAA_DEVICE_H
#define BAA_DEVICE_H

#include <stddef.h>

/* The longest label is shorter than this (47 characters and a NUL). */
#define DEVICE_LABEL_MAX 48

/* User-Agents longer than this are "unknown device": no browser sends one. */
#define DEVICE_USER_AGENT_MAX 1024

/*
 * "<browser> on <os>" ("Safari on iPhone", "Chrome (headless) on Linux"),
 * with "Browser" or "unknown OS" for the half that is not recognised; a
 * tool's name alone ("curl", "Python"); "unknown device" for NULL, empty,
 * overlong and unrecognised ones. Cut to fit size, always NUL-terminated
 * when size > 0; DEVICE_LABEL_MAX always fits.
 */
void device_label(const char *user_agent, char *out, size_t size);

#endif
