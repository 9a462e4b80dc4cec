/**
 * Chart.js, with only the pieces the console draws registered (so the bundle carries no more),
 * and one component that keeps a chart and updates it in place as its data moves.
 */
import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  DoughnutController,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
  type ChartData,
  type ChartOptions,
  type ChartType,
} from 'chart.js';
import { useEffect, useRef } from 'react';

Chart.register(
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  DoughnutController,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
);

/** Colours that stay apart for people with the common colour-vision deficiencies (Okabe–Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

type Kind = Extract<ChartType, 'line' | 'bar' | 'doughnut'>;

export function ChartView({
  type,
  data,
  options,
  label,
  height = 260,
}: {
  type: Kind;
  data: ChartData<Kind>;
  options?: ChartOptions<Kind>;
  /** What the chart shows, for screen readers. */
  label: string;
  height?: number;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  useEffect(() => {
    if (!canvas.current) return undefined;
    chart.current = new Chart(canvas.current, {
      type,
      data,
      options: { responsive: true, maintainAspectRatio: false, animation: { duration: 250 }, ...options },
    } as ChartConfiguration);
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
    // The chart is created once per type; data and options are updated in place below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [type]);
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.data = data as ChartData;
    if (options) c.options = { responsive: true, maintainAspectRatio: false, animation: { duration: 250 }, ...options } as ChartOptions;
    c.update();
  }, [data, options]);
  return (
    <div className="chart" style={{ height }}>
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}
