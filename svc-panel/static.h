/* static.h - the web UI's files (ui/) and the front-end libraries that
 * Debian installs (xterm.js, Chart.js), served by the panel.
 *
 *   GET /                    ui/index.html
 *   GET /ui/<path>           a file under BERTH_UI_DIR (default "ui")
 *   GET /vendor/<lib>/<path> a file of a library, from the table in
 *                            static.c, under BERTH_UI_VENDOR_DIR
 *                            (default /usr/share/nodejs)
 *
 * Only regular files with a known extension are served, and only when
 * their real path (symbolic links resolved) stays under their root; hidden
 * names, "." and ".." segments and backslashes are refused. Every answer
 * carries an ETag (inode, size, mtime) and is answered 304 when the
 * browser's If-None-Match names it. UI files are revalidated on every use
 * (Cache-Control: no-cache); library files are cached for a day. The HTML
 * page carries a Content-Security-Policy.
 *
 * Handlers run on worker threads (they stat and resolve paths); the file
 * itself is streamed by http.c.
 */
#ifndef BERTH_PANEL_STATIC_H
#define BERTH_PANEL_STATIC_H

#include "svc-panel/panel.h"

void static_index(panel *p, http_req *req, http_resp *resp);
void static_ui(panel *p, http_req *req, http_resp *resp);
void static_vendor(panel *p, http_req *req, http_resp *resp);

#endif
