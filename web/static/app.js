// dfew-web's only script (served from /static/app.js, no build step):
// keys 1-7 and s on the annotation page, the animation of a clip's frames,
// and a confirmation before cancelling a job. Pages work without it.
'use strict';
document.addEventListener('keydown', function (ev) {
  if (ev.ctrlKey || ev.altKey || ev.metaKey || ev.repeat) return;
  var key = ev.key === '0' ? 's' : ev.key;
  var b = document.querySelector('.emotions button[data-key="' + key + '"]');
  if (b && !b.disabled) {
    ev.preventDefault();
    document.querySelectorAll('.emotions button').forEach(function (x) { x.disabled = true; });
    // a disabled submitter is not sent: carry its value in a hidden field
    var f = b.form, h = document.createElement('input');
    h.type = 'hidden'; h.name = b.name; h.value = b.value;
    f.appendChild(h);
    f.submit();
  }
});
function animate(box) {
  var imgs = box.querySelectorAll('img'), i = 0;
  if (!imgs.length) return;
  imgs[0].classList.add('on');
  setInterval(function () {
    imgs[i].classList.remove('on');
    i = (i + 1) % imgs.length;
    imgs[i].classList.add('on');
  }, 1000 / (Number(box.dataset.fps) || 8));
}
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('.anim').forEach(animate);
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (ev) {
      if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
    });
  });
  var v = document.querySelector('video[data-autoplay]');
  if (v) { v.muted = true; var p = v.play(); if (p && p.catch) p.catch(function () {}); }
});
