// Line charts with uPlot (served at /vendor/uplot.js); without it, no chart (the tables carry the numbers).

let UPlot;
const loading = import("/vendor/uplot.js").then((m) => { UPlot = m.default; }, () => { UPlot = null; });

/** Draws or updates the chart in `el`: x values and one series per line. */
export async function lineChart(el, xLabel, xs, series, time = false) {
  await loading;
  if (!UPlot || xs.length === 0) return;
  const data = [xs, ...series.map((s) => s.values)];
  const width = Math.max(300, el.clientWidth || 600);
  const sig = `${xLabel}|${series.map((s) => s.label).join(",")}`;
  if (el.__chart && el.__sig === sig) {
    if (el.__chart.width !== width) el.__chart.setSize({ width, height: 180 });
    el.__chart.setData(data);
    return;
  }
  el.__chart?.destroy();
  el.__sig = sig;
  el.__chart = new UPlot({
    width, height: 180,
    scales: { x: { time } },
    axes: [time ? {} : { label: xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] }, { size: 60 }],
    series: [{ label: xLabel }, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, points: { show: xs.length < 40 } }))],
  }, data, el);
}
