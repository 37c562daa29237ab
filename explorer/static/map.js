// Gallery map (gr.HTML js_on_load): plotly.js from the local bundle, a thumbnail tooltip on hover,
// and trigger('point_click', {id}) on click so Python can open the item.
const draw = () => {
  const plot = element.querySelector('.covr-map-plot');
  const tip = element.querySelector('.covr-map-tip');
  if (!plot || !tip) { return; }
  let fig = null;
  try { fig = JSON.parse(props.value || '{}'); } catch (e) { fig = null; }
  if (!fig || !fig.data) { plot.innerHTML = '<p class="covr-map-empty">No map yet.</p>'; return; }
  if (!window.Plotly) { setTimeout(draw, 150); return; }
  window.Plotly.newPlot(plot, fig.data, fig.layout || {}, {responsive: true, displaylogo: false,
    scrollZoom: true, modeBarButtonsToRemove: ['select2d', 'lasso2d']});
  plot.on('plotly_hover', (ev) => {
    const p = ev.points && ev.points[0];
    if (!p || !p.customdata) { return; }
    const [id, caption, thumb] = p.customdata;
    tip.innerHTML = '';
    if (thumb) {
      const img = document.createElement('img');
      img.src = thumb; img.alt = id; img.className = 'covr-map-thumb';
      tip.appendChild(img);
    }
    const cap = document.createElement('div');
    cap.className = 'covr-map-caption';
    cap.textContent = id + (caption ? ' — ' + caption : '');
    tip.appendChild(cap);
    const box = element.getBoundingClientRect();
    const x = (ev.event ? ev.event.clientX : box.left) - box.left + 14;
    const y = (ev.event ? ev.event.clientY : box.top) - box.top + 14;
    tip.style.left = Math.min(x, box.width - 230) + 'px';
    tip.style.top = y + 'px';
    tip.style.display = 'block';
  });
  plot.on('plotly_unhover', () => { tip.style.display = 'none'; });
  plot.on('plotly_click', (ev) => {
    const p = ev.points && ev.points[0];
    if (p && p.customdata && p.customdata[0] && p.customdata[0] !== 'query') {
      trigger('point_click', {id: p.customdata[0]});
    }
  });
};
draw();
watch('value', draw);
