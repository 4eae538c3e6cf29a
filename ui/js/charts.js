// charts.js - live CPU and memory line charts with Chart.js (Debian's
// node-chart.js, served by the panel under /vendor/chart.js/). The last
// POINTS readings are kept; animation is off so a 1 Hz feed costs little.

const POINTS = 120;

let chartModule = null;

async function loadChart() {
  if (!chartModule) {
    chartModule = import('/vendor/chart.js/chart.mjs').then((m) => {
      m.Chart.register(...m.registerables);
      return m;
    }).catch((e) => {
      chartModule = null;
      throw new Error(`Chart.js could not be loaded from /vendor/chart.js (is node-chart.js installed?): ${e.message}`);
    });
  }
  return chartModule;
}

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function lineChart(Chart, box, label, color, yOptions) {
  const canvas = document.createElement('canvas');
  box.replaceChildren(canvas);
  return new Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets: [{ label, data: [], borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2, tension: 0.2, fill: false }] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { intersect: false, mode: 'index' },
      plugins: { legend: { display: false } },
      scales: {
        x: { ticks: { maxTicksLimit: 6, color: css('--muted') }, grid: { display: false } },
        y: Object.assign({ beginAtZero: true, ticks: { color: css('--muted') } }, yOptions),
      },
    },
  });
}

function mib(n) {
  return n / (1024 * 1024);
}

// Puts a CPU chart in cpuBox and a memory chart in memBox. Resolves to
// {add(atMs, cpuPercent, memoryBytes, limitBytes), destroy()}.
export async function liveCharts(cpuBox, memBox) {
  const { Chart } = await loadChart();
  const cpu = lineChart(Chart, cpuBox, 'CPU %', css('--accent'), { suggestedMax: 100, ticks: { callback: (v) => `${v}%` } });
  const mem = lineChart(Chart, memBox, 'Memory (MiB)', css('--ok'), { ticks: { callback: (v) => `${v} MiB` } });
  function push(chart, label, value) {
    chart.data.labels.push(label);
    chart.data.datasets[0].data.push(value);
    if (chart.data.labels.length > POINTS) {
      chart.data.labels.shift();
      chart.data.datasets[0].data.shift();
    }
    chart.update('none');
  }
  return {
    add(atMs, cpuPercent, memoryBytes, limitBytes) {
      const label = new Date(atMs).toLocaleTimeString();
      push(cpu, label, Math.round(cpuPercent * 10) / 10);
      if (limitBytes) mem.options.scales.y.suggestedMax = mib(limitBytes);
      push(mem, label, Math.round(mib(memoryBytes) * 10) / 10);
    },
    destroy() {
      cpu.destroy();
      mem.destroy();
    },
  };
}
