/* The screen's device pixel ratio, for WebGL charts (pages/evaluate.py): plotly draws a
   WebGL canvas at plotGlPixelRatio times its size, 2 unless told, which on a standard
   screen fills four times the pixels the screen shows. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    almanac: Object.assign({}, (window.dash_clientside || {}).almanac, {
        pixelRatio: function () {
            return window.devicePixelRatio || 1;
        }
    })
});
