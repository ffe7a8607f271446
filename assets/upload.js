/* Almanac ML Lab: the upload gate on /data (a clientside callback, served from assets/ so the
   Content-Security-Policy needs no inline script).

   A dcc.Upload holds the whole file as a base64 data URL in the browser. Sending a file over
   the upload limit to the server would only earn a 413 (the server's request bound) and no
   message; so the browser measures the file first and passes it on only when it is within
   the limit. The server always learns the size and shows the refusal as a red line. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    almanac: Object.assign({}, (window.dash_clientside || {}).almanac, {
        uploadGate: function (contents, limit) {
            if (!contents) {
                return [null, null];
            }
            var comma = contents.indexOf(",");
            var n = contents.length - comma - 1;
            var pad = contents.endsWith("==") ? 2 : (contents.endsWith("=") ? 1 : 0);
            var size = Math.floor(n * 3 / 4) - pad;
            return [size <= limit ? contents : null, size];
        }
    })
});
