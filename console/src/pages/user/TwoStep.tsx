/**
 * Two-step sign-in on the profile page: turning it on (the password, then a QR code or the
 * secret for the authenticator app, then the app's code to confirm), the recovery codes shown
 * once (copy or download), new recovery codes, and turning it off (the password and a code).
 */
import { useState, type FormEvent, type ReactNode } from 'react';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { accountChanged } from '../../api/session';
import { defineText, useLang, useText } from '../../i18n';
import { Badge, ErrorBox, Field, Loading } from '../../ui/components';
import { copyText } from '../../ui/clipboard';
import { dateTime } from '../../ui/format';

const text = defineText({
  en: {
    title: 'Two-step sign-in',
    intro: 'Besides your password, signing in asks for a code from an authenticator app on your phone (Google Authenticator, Microsoft Authenticator, 1Password, …).',
    on: 'On',
    off: 'Off',
    onSince: (when: string) => `On since ${when}.`,
    codesLeft: (n: number) => (n === 1 ? 'One recovery code left.' : `${n} recovery codes left.`),
    fewLeft: 'Make new recovery codes before you run out.',
    turnOn: 'Turn on',
    password: 'Your password',
    next: 'Continue',
    scan: 'Scan this QR code with your authenticator app, or type the key in.',
    qrAlt: 'QR code for your authenticator app',
    key: 'Key',
    code: 'The 6-digit code the app shows',
    confirm: 'Turn on two-step sign-in',
    cancel: 'Cancel',
    codesTitle: 'Your recovery codes',
    codesIntro: 'Each code signs you in once if you lose your phone. Keep them somewhere safe: they will not be shown again.',
    copy: 'Copy codes',
    copied: 'Copied.',
    copyFailed: 'Could not copy; select the codes and copy them.',
    download: 'Download',
    saved: 'I have saved them',
    renew: 'New recovery codes',
    renewNote: 'The old recovery codes stop working.',
    renewCode: 'A code from the app, or a recovery code',
    make: 'Make new codes',
    turnOff: 'Turn off',
    turnOffNote: 'Signing in will ask for your password only.',
    turnOffConfirm: 'Turn off two-step sign-in',
    wrongPassword: 'The password is wrong.',
    wrongCode: 'That code is wrong or was already used. Enter the current code.',
    enabled: 'Two-step sign-in is on.',
    disabled: 'Two-step sign-in is off.',
  },
  zh: {
    title: '两步验证',
    intro: '登录时除密码外，还需输入手机上身份验证器应用（Google Authenticator、Microsoft Authenticator、1Password 等）生成的验证码。',
    on: '已开启',
    off: '未开启',
    onSince: (when: string) => `自 ${when} 起开启。`,
    codesLeft: (n: number) => `剩余 ${n} 个恢复码。`,
    fewLeft: '恢复码即将用完，请生成新的恢复码。',
    turnOn: '开启',
    password: '你的密码',
    next: '继续',
    scan: '用身份验证器应用扫描此二维码，或手动输入密钥。',
    qrAlt: '身份验证器应用的二维码',
    key: '密钥',
    code: '应用显示的 6 位验证码',
    confirm: '开启两步验证',
    cancel: '取消',
    codesTitle: '你的恢复码',
    codesIntro: '手机丢失时，每个恢复码可登录一次。请妥善保存：它们不会再次显示。',
    copy: '复制恢复码',
    copied: '已复制。',
    copyFailed: '无法复制，请选中恢复码后手动复制。',
    download: '下载',
    saved: '我已保存',
    renew: '生成新的恢复码',
    renewNote: '旧的恢复码将失效。',
    renewCode: '应用中的验证码或一个恢复码',
    make: '生成新恢复码',
    turnOff: '关闭',
    turnOffNote: '关闭后登录只需密码。',
    turnOffConfirm: '关闭两步验证',
    wrongPassword: '密码不正确。',
    wrongCode: '验证码错误或已被使用，请输入当前的验证码。',
    enabled: '两步验证已开启。',
    disabled: '两步验证已关闭。',
  },
});

interface Standing {
  id: string;
  mfaEnabled: boolean;
  mfaEnabledAt: string | null;
  mfaRecoveryCodesLeft: number;
}

interface Enrolment {
  secret: string;
  otpauthUri: string;
  qrCodeSvg: string;
}

const STANDING = gql`
  query ProfileTwoStep {
    me {
      id
      mfaEnabled
      mfaEnabledAt
      mfaRecoveryCodesLeft
    }
  }
`;

const START = gql`
  mutation ProfileStartMfa($password: String!) {
    startMfaEnrolment(password: $password) {
      secret
      otpauthUri
      qrCodeSvg
    }
  }
`;

const CONFIRM = gql`
  mutation ProfileConfirmMfa($code: String!) {
    confirmMfaEnrolment(code: $code) {
      codes
    }
  }
`;

const RENEW = gql`
  mutation ProfileRenewRecoveryCodes($code: String!) {
    regenerateMfaRecoveryCodes(code: $code) {
      codes
    }
  }
`;

const DISABLE = gql`
  mutation ProfileDisableMfa($password: String!, $code: String!) {
    disableMfa(password: $password, code: $code)
  }
`;

type Step =
  | { kind: 'idle' }
  | { kind: 'password' }
  | { kind: 'scan'; enrolment: Enrolment }
  | { kind: 'codes'; codes: string[] }
  | { kind: 'renew' }
  | { kind: 'off' };

/** A step's form: busy while its request runs, and what went wrong, in words for the field at
 * fault when the server named it. */
function useAction() {
  const t = useText(text);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const run = (action: () => Promise<void>, afterFailure?: () => void) => async (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    setError(undefined);
    setBusy(true);
    try {
      await action();
    } catch (err) {
      afterFailure?.();
      const failure = toApiError(err);
      const field = failure.code === 'BAD_USER_INPUT' ? failure.extensions.field : undefined;
      if (field === 'password') setProblem(t.wrongPassword);
      else if (field === 'code') setProblem(t.wrongCode);
      else setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const shown = (
    <>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
    </>
  );
  return { busy, run, shown };
}

export function TwoStepPanel() {
  const t = useText(text);
  const { locale } = useLang();
  const standing = useQuery<{ me: Standing }>(STANDING);
  const [step, setStep] = useState<Step>({ kind: 'idle' });
  const [notice, setNotice] = useState<string>();
  const me = standing.data?.me;
  const done = (message?: string) => {
    setStep({ kind: 'idle' });
    setNotice(message);
    standing.reload();
  };
  const go = (next: Step) => {
    setNotice(undefined);
    setStep(next);
  };

  let body: ReactNode = null;
  if (step.kind === 'password') body = <PasswordStep onEnrolment={(enrolment) => go({ kind: 'scan', enrolment })} onCancel={() => done()} />;
  else if (step.kind === 'scan') body = (
      <ScanStep
        enrolment={step.enrolment}
        onCodes={(codes) => {
          go({ kind: 'codes', codes });
          standing.reload();
          accountChanged();
        }}
        onCancel={() => done()}
      />
    );
  else if (step.kind === 'codes') body = <RecoveryCodes codes={step.codes} onSaved={() => done(t.enabled)} />;
  else if (step.kind === 'renew') body = <RenewStep onCodes={(codes) => go({ kind: 'codes', codes })} onCancel={() => done()} />;
  else if (step.kind === 'off') body = <OffStep onOff={() => done(t.disabled)} onCancel={() => done()} />;

  return (
    <section className="card" aria-labelledby="profile-two-step" id="two-step">
      <h2 id="profile-two-step">
        {t.title} {me && <Badge tone={me.mfaEnabled ? 'ok' : 'muted'}>{me.mfaEnabled ? t.on : t.off}</Badge>}
      </h2>
      <p className="muted">{t.intro}</p>
      <ErrorBox error={standing.error} onRetry={standing.reload} />
      <Loading show={standing.loading && !me} />
      {notice && (
        <p className="ok-text" role="status">
          {notice}
        </p>
      )}
      {me && step.kind === 'idle' && !me.mfaEnabled && (
        <button type="button" className="primary" onClick={() => go({ kind: 'password' })}>
          {t.turnOn}
        </button>
      )}
      {me && step.kind === 'idle' && me.mfaEnabled && (
        <div className="stack">
          <p>
            {me.mfaEnabledAt && t.onSince(dateTime(me.mfaEnabledAt, locale))} {t.codesLeft(me.mfaRecoveryCodesLeft)}
            {me.mfaRecoveryCodesLeft <= 3 && <strong> {t.fewLeft}</strong>}
          </p>
          <div className="row">
            <button type="button" onClick={() => go({ kind: 'renew' })}>
              {t.renew}
            </button>
            <button type="button" className="danger" onClick={() => go({ kind: 'off' })}>
              {t.turnOff}
            </button>
          </div>
        </div>
      )}
      {body}
    </section>
  );
}

function PasswordStep({ onEnrolment, onCancel }: { onEnrolment(e: Enrolment): void; onCancel(): void }) {
  const t = useText(text);
  const { busy, run, shown } = useAction();
  const [password, setPassword] = useState('');
  const submit = run(async () => {
    const d = await request<{ startMfaEnrolment: Enrolment }>(START, { password });
    onEnrolment(d.startMfaEnrolment);
  });
  return (
    <form className="stack" onSubmit={(e) => void submit(e)}>
      <Field label={t.password}>
        <input type="password" autoComplete="current-password" required autoFocus value={password} onChange={(e) => setPassword(e.target.value)} />
      </Field>
      {shown}
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {t.next}
        </button>
        <button type="button" onClick={onCancel}>
          {t.cancel}
        </button>
      </div>
    </form>
  );
}

function CodeField({ label, value, onChange }: { label: string; value: string; onChange(v: string): void }) {
  return (
    <Field label={label}>
      <input
        autoComplete="one-time-code"
        required
        maxLength={32}
        spellCheck={false}
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
    </Field>
  );
}

function ScanStep({ enrolment, onCodes, onCancel }: { enrolment: Enrolment; onCodes(codes: string[]): void; onCancel(): void }) {
  const t = useText(text);
  const { busy, run, shown } = useAction();
  const [code, setCode] = useState('');
  const submit = run(
    async () => {
      const d = await request<{ confirmMfaEnrolment: { codes: string[] } }>(CONFIRM, { code });
      onCodes(d.confirmMfaEnrolment.codes);
    },
    () => setCode(''),
  );
  // The SVG is the server's own rendering of the URI; as an image it cannot run anything.
  const qr = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrolment.qrCodeSvg)}`;
  return (
    <form className="stack" onSubmit={(e) => void submit(e)}>
      <p>{t.scan}</p>
      <img className="mfa-qr" src={qr} alt={t.qrAlt} width={200} height={200} />
      <Field label={t.key}>
        <input className="mono" readOnly value={enrolment.secret.replace(/(.{4})/g, '$1 ').trim()} onFocus={(e) => e.target.select()} />
      </Field>
      <CodeField label={t.code} value={code} onChange={setCode} />
      {shown}
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {t.confirm}
        </button>
        <button type="button" onClick={onCancel}>
          {t.cancel}
        </button>
      </div>
    </form>
  );
}

function RecoveryCodes({ codes, onSaved }: { codes: string[]; onSaved(): void }) {
  const t = useText(text);
  const [copy, setCopy] = useState<'idle' | 'done' | 'failed'>('idle');
  const all = codes.join('\n');
  const download = `data:text/plain;charset=utf-8,${encodeURIComponent(`CloudBase AI recovery codes\n\n${all}\n`)}`;
  return (
    <div className="stack mfa-codes">
      <h3>{t.codesTitle}</h3>
      <p>{t.codesIntro}</p>
      <ol className="mono" aria-label={t.codesTitle}>
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ol>
      <div className="row">
        <button type="button" onClick={() => void copyText(all).then((ok) => setCopy(ok ? 'done' : 'failed'))}>
          {t.copy}
        </button>
        <a className="button" href={download} download="cloudbase-recovery-codes.txt">
          {t.download}
        </a>
        <button type="button" className="primary" onClick={onSaved}>
          {t.saved}
        </button>
        <span role="status" className={copy === 'failed' ? 'bad-text' : 'ok-text'}>
          {copy === 'done' ? t.copied : copy === 'failed' ? t.copyFailed : ''}
        </span>
      </div>
    </div>
  );
}

function RenewStep({ onCodes, onCancel }: { onCodes(codes: string[]): void; onCancel(): void }) {
  const t = useText(text);
  const { busy, run, shown } = useAction();
  const [code, setCode] = useState('');
  const submit = run(
    async () => {
      const d = await request<{ regenerateMfaRecoveryCodes: { codes: string[] } }>(RENEW, { code });
      onCodes(d.regenerateMfaRecoveryCodes.codes);
    },
    () => setCode(''),
  );
  return (
    <form className="stack" onSubmit={(e) => void submit(e)}>
      <p className="muted">{t.renewNote}</p>
      <CodeField label={t.renewCode} value={code} onChange={setCode} />
      {shown}
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {t.make}
        </button>
        <button type="button" onClick={onCancel}>
          {t.cancel}
        </button>
      </div>
    </form>
  );
}

function OffStep({ onOff, onCancel }: { onOff(): void; onCancel(): void }) {
  const t = useText(text);
  const { busy, run, shown } = useAction();
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const submit = run(
    async () => {
      await request(DISABLE, { password, code });
      onOff();
    },
    () => setCode(''),
  );
  return (
    <form className="stack" onSubmit={(e) => void submit(e)}>
      <p className="muted">{t.turnOffNote}</p>
      <Field label={t.password}>
        <input type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
      </Field>
      <CodeField label={t.renewCode} value={code} onChange={setCode} />
      {shown}
      <div className="row">
        <button type="submit" className="danger" disabled={busy}>
          {t.turnOffConfirm}
        </button>
        <button type="button" onClick={onCancel}>
          {t.cancel}
        </button>
      </div>
    </form>
  );
}
