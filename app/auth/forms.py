from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional


class LoginForm(FlaskForm):
    username = StringField("User name or e-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("Remember this device")  # its hint: sessions.remember_hint
    # Shown only while the account is locked (too many failures): then a password signs in
    # only together with a code of the account's second factor.
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[Optional(), Length(max=64)],
    )
    next = HiddenField()
    submit = SubmitField("Sign in")


class SetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="the passwords differ")],
    )
    submit = SubmitField("Set password")


class ChangePasswordForm(SetPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])
    submit = SubmitField("Change password")


class LogoutForm(FlaskForm):
    submit = SubmitField("Sign out")


class ForgotPasswordForm(FlaskForm):
    identifier = StringField("User name or e-mail", validators=[DataRequired(), Length(max=254)])
    submit = SubmitField("Send reset link")
