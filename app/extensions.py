"""Flask extensions, created unbound; create_app() binds them."""

from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from app.db import Base

db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
