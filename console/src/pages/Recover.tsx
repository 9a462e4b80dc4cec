/**
 * Getting back in without the password: ask for a reset link by email (`#/forgot-password`), and
 * set a new password with the link's token (`#/reset-password?token=…`, or the code pasted from
 * the email). The server answers the request the same for every address, so the page does too.
 */
import { useState, type FormEvent } from 'react';
import { ApiError, request, toApiError } from '../api/client';
import { gql } from '../api/gql';
import { defineText, useText } from '../i18n';
import { ErrorBox, Field } from '../ui/components';
import { href } from '../router';
import { AuthPage } from './Login';

const text = defineText({
  en: {
    forgotTitle: 'Forgot your password?',
    forgotIntro: 'Enter the email of your account. We will send a link to choose a new password.',
    email: 'Email',
    send: 'Send the link',
    sending: 'Sending…',
    sent: 'If an account uses this address, a link is on its way. It works once, for 30 minutes. Check your spam folder too.',
    notSetUp: 'Password reset by email is not set up on this server. Ask an administrator to reset your password.',
    back: 'Back to sign in',
    resetTitle: 'Choose a new password',
    resetIntro: 'Setting a new password signs you out everywhere. If your account has two-step sign-in, you will still need a code.',
    code: 'Reset code from the email',
    newPassword: 'New password',
    hint: 'At least 8 characters; a few uncommon words work well.',
    repeat: 'New password again',
    mismatch: 'The two passwords do not match.',
    save: 'Set the new password',
    saving: 'Saving…',
    done: 'Your password was changed. Sign in with the new one.',
    deadLink: 'This link is invalid, used or expired. Ask for a new one.',
    askAgain: 'Ask for a new link',
    signIn: 'Sign in',
  },
  zh: {
    forgotTitle: '忘记密码？',
    forgotIntro: '请输入账户的电子邮件地址，我们会发送一个设置新密码的链接。',
    email: '邮箱',
    send: '发送链接',
    sending: '正在发送…',
    sent: '如果有账户使用此地址，重置链接已发出。链接在 30 分钟内有效，只能使用一次。也请检查垃圾邮件。',
    notSetUp: '本服务器未开启邮件重置密码。请联系管理员重置密码。',
    back: '返回登录',
    resetTitle: '设置新密码',
    resetIntro: '设置新密码后，你的所有会话都会退出登录。如果账户开启了两步验证，登录时仍需输入验证码。',
    code: '邮件中的重置码',
    newPassword: '新密码',
    hint: '至少 8 个字符；几个不常见的词组合效果很好。',
    repeat: '再次输入新密码',
    mismatch: '两次输入的密码不一致。',
    save: '设置新密码',
    saving: '正在保存…',
    done: '密码已修改，请使用新密码登录。',
    deadLink: '此链接无效、已使用或已过期，请重新申请。',
    askAgain: '重新申请链接',
    signIn: '登录',
  },
});

const REQUEST = gql`
  mutation ConsoleRequestPasswordReset($email: String!) {
    requestPasswordReset(email: $email)
  }
`;

const RESET = gql`
  mutation ConsoleResetPassword($token: String!, $newPassword: String!) {
    resetPassword(token: $token, newPassword: $newPassword)
  }
`;

export function ForgotPassword() {
  const t = useText(text);
  const [email, setEmail] = useState('');
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setSent(false);
    setProblem(undefined);
    setError(undefined);
    try {
      await request(REQUEST, { email });
      setSent(true);
    } catch (e) {
      const failure = toApiError(e);
      if (failure.code === 'FORBIDDEN') setProblem(t.notSetUp);
      else setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <AuthPage title={t.forgotTitle} onSubmit={(e) => void submit(e)}>
      <p className="muted">{t.forgotIntro}</p>
      {sent && (
        <p className="notice" role="status">
          {t.sent}
        </p>
      )}
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
      <Field label={t.email}>
        <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </Field>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? t.sending : t.send}
      </button>
      <p>
        <a href={href('/login')}>{t.back}</a>
      </p>
    </AuthPage>
  );
}

export function ResetPassword({ token: given }: { token: string | null }) {
  const t = useText(text);
  const [token, setToken] = useState(given ?? '');
  const [form, setForm] = useState({ next: '', repeat: '' });
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    setError(undefined);
    if (form.next !== form.repeat) return setProblem(t.mismatch);
    setBusy(true);
    try {
      await request(RESET, { token: token.trim(), newPassword: form.next });
      setDone(true);
    } catch (e) {
      const failure = toApiError(e);
      if (failure.code === 'BAD_USER_INPUT' && failure.extensions.field === 'token') setProblem(t.deadLink);
      else setError(failure);
    } finally {
      setBusy(false);
    }
  };
  if (done) {
    return (
      <AuthPage title={t.resetTitle}>
        <p className="ok-text" role="status">
          {t.done}
        </p>
        <p>
          <a href={href('/login')}>{t.signIn}</a>
        </p>
      </AuthPage>
    );
  }
  return (
    <AuthPage title={t.resetTitle} onSubmit={(e) => void submit(e)}>
      <p className="muted">{t.resetIntro}</p>
      {problem && (
        <p className="error" role="alert">
          {problem}
          {problem === t.deadLink && (
            <>
              {' '}
              <a href={href('/forgot-password')}>{t.askAgain}</a>
            </>
          )}
        </p>
      )}
      <ErrorBox error={error} />
      {!given && (
        <Field label={t.code}>
          <input required spellCheck={false} autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />
        </Field>
      )}
      <Field label={t.newPassword} hint={t.hint}>
        <input type="password" autoComplete="new-password" required value={form.next} onChange={(e) => setForm((f) => ({ ...f, next: e.target.value }))} />
      </Field>
      <Field label={t.repeat}>
        <input type="password" autoComplete="new-password" required value={form.repeat} onChange={(e) => setForm((f) => ({ ...f, repeat: e.target.value }))} />
      </Field>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? t.saving : t.save}
      </button>
      <p>
        <a href={href('/login')}>{t.back}</a>
      </p>
    </AuthPage>
  );
}
